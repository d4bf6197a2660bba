// The safe-prime test of a large custom DH prime, which runs off the io thread (act::TestPrime,
// in::PrimeTested): the session goes on meanwhile and traces the verdict when it comes.
#include <memory>
#include <utility>

#include "analysis/kex.h"
#include "analysis/summary.h"
#include "session/proxy_session.h"

namespace tlstrace::session {

using trace::Json;

// A large custom prime is tested on a worker (analysis::kInlinePrimeBits): the leg goes on, its
// tls.key_exchange says checks.safe_prime "pending", and tls.prime_check brings the verdict.
void ProxySession::awaitPrimeTest(Leg& l, const analysis::KexInput& in) {
  if (l.pending_kex) return;  // one test per leg
  l.pending_kex = std::make_unique<Leg::PendingKex>(
      Leg::PendingKex{*in.offer, *in.choice, *in.kex, in.resumed, in.server_key_bits});
  actions_.push_back(act::TestPrime{l.which, in.kex->p});
}

// The verdict: the key exchange assessed again with it, as tls.prime_check (docs/events.md), and
// conn.summary's rating of the leg brought up to date.
void ProxySession::onPrimeTested(Leg& l, const in::PrimeTested& t) {
  if (!l.pending_kex || !deps_.primes) return;
  const std::unique_ptr<Leg::PendingKex> p = std::move(l.pending_kex);
  analysis::KexInput in;
  in.offer = &p->offer;
  in.choice = &p->choice;
  in.kex = &p->kex;
  in.resumed = p->resumed;
  in.server_key_bits = p->server_key_bits;
  in.safe_prime = t.safe;
  const Json kex = analysis::assessKeyExchange(in, *deps_.primes);
  Json check = Json::object();
  check.set("safe_prime", t.safe ? Json(*t.safe) : Json());
  if (const Json* bits = kex.find("bits")) check.set("bits", *bits);
  if (t.safe) check.set("test_ms", trace::timingMs(t.ms));
  else check.set("error", t.why);
  for (const char* f : {"checks", "rating", "reasons"})
    if (const Json* v = kex.find(f)) check.set(f, *v);
  if (!t.safe) {  // untested: the pending assessment stands
    emit(l.which, trace::ev::TlsPrimeCheck{{std::move(check)}});
    return;
  }
  const Json* rating = kex.find("rating");
  if (!l.key_exchange.isNull()) {
    l.key_exchange = analysis::keepForSummary(analysis::SummaryInput::KeyExchange, kex);
  } else if (summary_part_ && rating) {
    Json tree = summary_part_->tree;
    if (Json* leg = tree.find(trace::legName(l.which)); leg && leg->find("key_exchange_rating"))
      leg->set("key_exchange_rating", *rating);
    summary_part_ = internSummaryPart(std::move(tree));
  }
  emit(l.which, trace::ev::TlsPrimeCheck{{std::move(check)}});
}

}  // namespace tlstrace::session
