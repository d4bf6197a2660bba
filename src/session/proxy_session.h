// One proxied connection as a sans-I/O state machine: inputs in (bytes read on a leg, the upstream
// connected or not, a write done, a peer's FIN or RST, the timer), actions out (read, send,
// shut down, abort, connect, arm the timer, finish) and trace events into a batch. It owns both
// TLS engines (OpenSSL over memory buffers) and decides everything: the handshake order (read the
// ClientHello, connect upstream, finish the upstream handshake, then the client's), relay,
// backpressure and closing. No sockets, no clocks of its own, no threads: the driver in net/
// carries the actions out, and tests drive it with scripted inputs.
#pragma once
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "analysis/diagnose.h"
#include "analysis/fingerprint.h"
#include "analysis/kex.h"
#include "analysis/summary.h"
#include "session/deps.h"
#include "session/front_end.h"
#include "session/io.h"
#include "session/probe.h"
#include "session/starttls.h"
#include "tls/engine.h"
#include "tls/keys.h"
#include "tls/session_info.h"
#include "trace/decoder.h"
#include "trace/event.h"
#include "wire/record_stream.h"

namespace tlstrace::session {

// conn.summary's handshake part, built once both legs of a connection are established; shared
// between the connections of one io thread whose parts are equal (compared by their JSON text).
struct SummaryPart {
  std::string text;  // its JSON text: the identity of the part
  trace::Json tree;  // what conn.summary is completed from at the close
};
// The shared copy of an equal part made lately on this thread, or a new one (session_tls.cpp).
[[nodiscard]] std::shared_ptr<const SummaryPart> internSummaryPart(trace::Json part);

// How a handshake failure showed itself on the transport, for the diagnosis.
struct ErrorFacts {
  bool reset = false;
  bool closed = false;
  bool timeout = false;
};

// --audit-clients, per connection: who the client is and what it was shown.
struct AuditState {
  std::string client;    // "ip:port"
  std::string scenario;  // its name; empty: none (the normal forged leaf)
  bool reported = false;
};

class ProxySession {
 public:
  ProxySession(const Deps& deps, const FrontEnd& front, std::uint64_t id);
  ~ProxySession();
  ProxySession(const ProxySession&) = delete;
  ProxySession& operator=(const ProxySession&) = delete;

  // Advances the state machine. The actions are valid until the next call; the events gather in
  // the batch until commitEvents().
  const std::vector<Action>& handle(Input input);
  // Starts a probe instead of a proxied connection (session/probe.h): no client leg, the upstream
  // leg offers what `spec` says. Instead of handle(in::Start{}).
  const std::vector<Action>& probe(const ProbeSpec& spec);
  // Hands the events gathered so far to the tracer (the driver calls it after each burst of work:
  // one queue lock per burst, not per event).
  void commitEvents();
  // The gathered events, not yet committed (tests read them here).
  [[nodiscard]] std::vector<trace::Event>& events() { return events_; }
  [[nodiscard]] bool finished() const { return finished_; }
  // What the kernel already holds from a leg's peer when the session ends that leg itself: its
  // FIN (CLOSE_WAIT) or its reset (CLOSE), not read yet. tcp.close names the side whose FIN or
  // RST came first, as a capture shows it.
  enum class PeerEnd { None, Fin, Rst };
  // What only the driver's sockets know, asked by the session as it ends a leg. One pointer, not
  // two std::function: the Connection's size decides its allocation class.
  class SocketFacts {
   public:
    virtual ~SocketFacts() = default;
    // The leg's TCP_INFO at its close (tcp.info before tcp.close), or nullopt.
    virtual std::optional<trace::ev::TcpInfo> tcpInfoAtClose(trace::Leg leg) = 0;
    // Before the leg's FIN went out: what the kernel holds now. After: what it held just before.
    virtual PeerEnd peerEnd(trace::Leg leg) = 0;
  };
  // Set by the driver, which owns the sockets; unset, the session assumes nothing.
  void setSocketFacts(SocketFacts* facts) { facts_ = facts; }
  [[nodiscard]] std::uint64_t id() const { return id_; }

 private:
  enum class State {
    ReadingRequest,     // the front end reads the client's request
    Connecting,         // waiting for in::Connected
    PeekingHello,       // is the client speaking TLS? reading its ClientHello
    StartTls,           // relaying a STARTTLS preamble (session/starttls.h) until TLS starts
    UpstreamHandshake,  // the proxy's own handshake with the server
    ClientHandshake,    // the handshake with the client (forged certificate)
    Relaying,
    ProbeTickets,  // a probe's handshake is done: waiting briefly for a TLS 1.3 NewSessionTicket
    Closing,       // closing both legs politely, within a grace period
    Done
  };
  // What to do once the upstream connection is up (or could not be made).
  enum class AfterConnect { None, TunnelReply, Forward, PlainRelay, UpstreamTls, StartTls };

  struct Leg;
  // OpenSSL's callbacks for one leg: they copy bytes into events and return.
  struct Observer : tls::TlsEngine::Observer {
    ProxySession* s = nullptr;
    Leg* leg = nullptr;
    void onTlsMessage(bool sent, int content_type, std::span<const std::uint8_t> bytes) override;
    void onRecordHeader(bool sent, std::span<const std::uint8_t> header) override;
    void onKeylog(std::string_view line) override;
    const std::string* alpnChoice() override;
    int clientHelloAbortAlert() override;
    void onVerifyError(tls::VerifyFailure&& failure) override;

    // During a handshake step the messages and record headers OpenSSL reports are only copied
    // (with their time) and decoded once the step's output is on its way: the peer is not kept
    // waiting for the trace. Replayed in order, before anything reads the decoder or the alerts.
    void deferUntilReplay() { defer_ = true; }
    void replayDeferred();  // (and stop deferring)

   private:
    struct Deferred {
      trace::Clock::time_point ts;
      bool header = false;  // a record header, else a message
      bool sent = false;
      int content_type = 0;
      std::vector<std::uint8_t> bytes;
    };
    void message(bool sent, int content_type, std::span<const std::uint8_t> bytes);
    void recordHeader(bool sent, std::span<const std::uint8_t> header);
    bool defer_ = false;
    std::vector<Deferred> deferred_;
  };

  // The transport of one leg, as the session sees it through its actions.
  struct Transport {
    bool open = false;
    bool reading = false;           // an act::Read is out
    bool writing = false;           // an act::Send is out
    bool paused = false;            // not reading: the other leg has too much to write
    bool eos = false;               // the peer finished sending (FIN or close_notify)
    bool fin_seen = false;          // its FIN
    bool shut_after_flush = false;  // our FIN goes once everything is written
    bool shut_sent = false;
    bool dead = false;       // reset or error: nothing more to send or receive
    bool compacted = false;  // handshake buffers given back
    // The TLS end of the stream, per direction (tcp.close's close_notify_in / close_notify_out):
    // a FIN without close_notify is a truncation, passed on as one, never laundered.
    bool tls_relayed = false;      // an established TLS leg (tcp.close reports close_notify)
    bool notify_in = false;        // the peer's close_notify arrived
    bool notify_queued = false;    // ours is queued before our FIN
    bool notify_out = false;       // ours was written, then our FIN
    bool rst_after_flush = false;  // mirror the other leg's RST once what is queued is written
    bool await_fin = false;        // the peer ended TLS with a fatal alert: its FIN comes before ours
  };

  struct Leg {
    Leg(trace::Leg w, tls::CertSummaryCache* certs);
    trace::Leg which;
    int client_certs = -1;  // certificates in the client's Certificate message (-1: none came)
    std::unique_ptr<tls::TlsEngine> tls;
    Observer obs;
    Transport t;
    std::vector<std::uint8_t> pending;  // raw bytes to send before any TLS output
    std::vector<std::uint8_t> wbuf;     // in flight
    std::string_view by;                // who closed first: "peer" or "proxy" (a literal)
    std::string_view how;               // "fin", "rst", "timeout", "error" (a literal)
    std::uint64_t bytes_in = 0;
    std::uint64_t bytes_out = 0;
    SteadyClock::time_point opened{};
    SteadyClock::time_point hs_start{};
    tls::VerifyFailure verify_failure;
    trace::LegDecoder decoder;
    // What the connection summary and error diagnosis need.
    trace::Json established;
    trace::Json trust;
    trace::Json key_exchange;
    std::unique_ptr<analysis::LegFingerprints> prints;  // as the hello events showed them
    std::vector<std::string> alerts;
    std::string last_alert_sent, last_alert_received;
    std::optional<double> connect_ms, handshake_ms;
    std::string error_cause;
    // The session as the ServerHello went by: a resumed one's lifetime and age (OpenSSL gives a
    // TLS 1.3 server's session a new time once its NewSessionTicket is made).
    tls::SessionTimes session_times;
    bool certificate_requested = false;  // a CertificateRequest arrived (the diagnosis needs it)
    bool peer_certificate = false;       // the peer's Certificate arrived (traced if the handshake fails)
    // A TLS <= 1.2 renegotiation under way on the established leg (RFC 5246 7.4.1.1, RFC 5746):
    // when it started, and whether a Finished of it went by.
    bool tls13 = false;  // established with TLS 1.3: no renegotiation, post-handshake messages only
    bool renegotiating = false;
    bool renegotiation_finished = false;
    SteadyClock::time_point renegotiation_start{};
    // TLS 1.3 application traffic secrets (for KeyUpdate), only kept with --log-secrets.
    tls::SecretBytes app_secret_client, app_secret_server;
    // A key exchange whose custom prime is being tested (act::TestPrime): what its re-assessment
    // needs, as the decoder may have let go of the handshake by the time the verdict comes.
    struct PendingKex {
      trace::HelloOffer offer;
      trace::ServerChoice choice;
      trace::KexMaterial kex;
      bool resumed = false;
      int server_key_bits = 0;
    };
    std::unique_ptr<PendingKex> pending_kex;
  };

  // Inputs (proxy_session.cpp).
  void onStart(const in::Start& s);
  void onBytes(Leg& l, std::span<const std::uint8_t> bytes);
  void onConnected(const in::Connected& c);
  void onConnectFailed(const in::ConnectFailed& f);
  void onTargetRefused(const in::TargetRefused& r);
  void traceProxyHopFailure(const in::ConnectFailed& f);  // --upstream-proxy: tls.error (session_hop.cpp)
  void onClosed(Leg& l, const in::Closed& c);
  void onWritten(Leg& l, std::size_t n);
  void onTimer();

  // Events.
  // One event of a kind of trace/events.h, if its category is traced.
  template <class Kind>
  void emit(trace::Leg leg, Kind&& what) {
    if (tracing(std::decay_t<Kind>::kCategory)) newEvent(leg, std::forward<Kind>(what));
  }
  void newEvent(trace::Leg leg, trace::Payload&& what);
  [[nodiscard]] bool tracing(trace::Category c) const;

  // Front end (proxy_session.cpp).
  void onRequestBytes();
  void respondAndClose(int status, const std::string& reason, const std::string& extra_headers = {});
  void refuseWith(const std::string& reply, const std::string& reason, const std::string& cause);
  void connectUpstream(AfterConnect then);
  void afterConnect();
  void connectFailed(int status, const std::string& why);
  void onHelloBytes();
  void startPlainRelay();
  void serverSpokeFirst(std::span<const std::uint8_t> bytes);
  void refuseNotTls(const std::string& reason, bool close = true);

  // TLS on both legs (session_tls.cpp).
  void traceClientHello();  // hello_, decoded once
  void startUpstreamTls();
  void stepUpstreamHandshake();
  void startClientTls();
  // --audit-clients: presents the next scenario for this client instead of the forged leaf; false
  // when none is due (or on an error, traced) and `installed` says which.
  bool installAuditScenario(bool& installed);
  // The client's verdict on the scenario, once: it sent application data (accepted) or it did not.
  void reportAudit(bool accepted, const std::string& evidence);
  void stepClientHandshake();
  [[nodiscard]] bool refuseClientVersion();  // the hello's versions are refused on the client leg
  void queueClientAlert(int alert);
  void abortClientHandshake(const std::string& why);
  void traceTlsError(Leg& l, const std::string& reason, const std::string& stage, ErrorFacts facts = ErrorFacts{});
  void analyseUnfinished(Leg& l, analysis::FailureFacts& ff);  // tls.key_exchange of a failed handshake
  void onEstablished(Leg& l, SteadyClock::time_point at);
  void noteRenegotiation(Leg& l, wire::HandshakeType type);   // from the message callback
  void onRenegotiated(Leg& l);                                // tls.established of a renegotiation
  void awaitPrimeTest(Leg& l, const analysis::KexInput& in);  // act::TestPrime of a pending assessment
  void onPrimeTested(Leg& l, const in::PrimeTested& t);       // tls.prime_check
  // The upstream leg's established-time trace work (its last messages, tls.trust,
  // tls.established) waits until the client's first flight is sent; it runs before any other
  // event of the connection, stamped with the time the handshake completed.
  void settleUpstream();
  void traceTrust();  // tls.trust for the upstream leg
  // Mutual TLS (session_mtls.cpp): the upstream leg's client certificate, chosen by host; and
  // tls.client_certificate for a leg on which a certificate was requested.
  [[nodiscard]] bool presentClientCertificate();
  void traceClientCertificate(Leg& l);
  [[nodiscard]] static analysis::LegReport legReport(const Leg& l);
  [[nodiscard]] trace::Json fingerprints(Leg& l, bool client_hello);  // JA3/JA4 (or JA3S/JA4S) of a hello
  void settleSummary();
  void emitKeys(Leg& l, const char* direction, const std::string& epoch, const tls::TrafficKeys& k);
  void onKeyUpdate(Leg& l, bool from_client);
  [[nodiscard]] bool fromClient(const Leg& l, bool sent) const { return &l == &client_ ? !sent : sent; }
  [[nodiscard]] std::string verifyName() const { return sni_.empty() ? target_.host : sni_; }

  // STARTTLS (session_starttls.cpp).
  [[nodiscard]] std::optional<StartTlsProto> startTlsProto() const;
  void beginStartTls();
  void onStartTlsBytes(Leg& l, std::span<const std::uint8_t> bytes);
  void startTlsRefused(const std::string& answer);
  void endStartTlsPlain(Leg& l, const std::string& why, std::span<const std::uint8_t> decided);
  void onStartTlsClosed(Leg& l);

  // Passthrough (session_passthrough.cpp).
  struct PassState {
    wire::RecordStream from_client, from_server;
    bool analysed = false;  // tls.key_exchange emitted
  };
  [[nodiscard]] std::string clientIp() const;  // client_addr_'s address (passthrough is per client)
  [[nodiscard]] bool maybePassthrough();       // the hello is in: relay untouched if a rule says so
  void observePassthrough(Leg& src, std::span<const std::uint8_t> bytes);
  void analysePassthrough();
  void noteCertificateRejection(int alert);  // --auto-passthrough

  // Probe (session_probe.cpp).
  void probeEstablished();
  void probeRead();
  void probeDone();

  // Relay and close (session_relay.cpp).
  void startRelay();
  void readFrom(Leg& l);
  void step(Leg& l, std::span<const std::uint8_t> bytes);  // onBytes' work, by state
  [[nodiscard]] static std::size_t queued(const Leg& l);
  void relay(Leg& src, std::span<const std::uint8_t> plain_in);
  [[nodiscard]] bool passOn(Leg& src, Leg& dst, std::span<const std::uint8_t> plain);  // false: dst failed
  void endOfStream(Leg& src, bool clean);  // clean: close_notify came before the FIN
  void flush(Leg& l);
  void onDrained(Leg& l);
  void resumeOther(Leg& l);
  void abortLeg(Leg& l, std::string_view how, const std::string& why);  // how: a literal (kept as Leg::how)
  // The session ends a leg itself (`how`: "fin" or "rst"), unless its peer's end came first.
  void endByProxy(Leg& l, std::string_view how);
  void failTls(Leg& l, const std::string& why);  // a TLS error on an established leg
  void queueCloseNotify(Leg& l);
  void closeGracefully(const std::string& outcome);
  void maybeFinish();
  void finish();
  void armWatchdog();
  void onWatchdog();
  void touch() { last_activity_ = deps_.now(); }
  // When the handshake's time began: the connection's start, or after a STARTTLS preamble its end.
  SteadyClock::time_point handshakeFrom() const {
    return handshake_from_ == SteadyClock::time_point{} ? start_ : handshake_from_;
  }
  Leg& leg(trace::Leg which) { return which == trace::Leg::Upstream ? upstream_ : client_; }
  Leg& other(Leg& l) { return &l == &client_ ? upstream_ : client_; }

  const Deps& deps_;
  const FrontEnd& front_;
  std::uint64_t id_;
  Leg client_;
  Leg upstream_;
  std::vector<Action> actions_;
  State state_ = State::ReadingRequest;
  AfterConnect after_connect_ = AfterConnect::None;
  std::vector<std::uint8_t> inbuf_;  // request head / ClientHello bytes, replayed, never dropped
  config::HostPort target_;
  // What goes out once connected (after_connect_ says which; one string for both: it counts in
  // every connection's memory): CONNECT's answer to the client (TunnelReply), or the absolute-form
  // request rewritten for the origin (Forward).
  std::string connected_bytes_;
  std::string client_addr_;       // "ip:port", for conn.refused
  std::size_t interim_sent_ = 0;  // bytes of FrontStep::interim sent so far
  int connect_errno_ = 0;         // of the last in::ConnectFailed
  bool finished_ = false;
  bool awaiting_fins_ = false;  // the relay is over; the peers' FINs are awaited (grace period)
  std::string sni_;
  std::vector<std::string> client_alpn_;
  std::string alpn_choice_;
  bool alpn_known_ = false;
  int abort_alert_ = 0;
  std::vector<std::uint8_t> hello_;      // the client's ClientHello (reassembled) until traced
  trace::Clock::time_point hello_ts_{};  // when it was complete
  bool hello_pending_ = false;           // to be traced at the start of the next input
  bool hello_traced_ = false;            // the client's ClientHello was traced from the raw bytes
  bool upstream_settle_pending_ = false;
  trace::Clock::time_point event_ts_{};  // set while deferred messages are replayed: their time
  SteadyClock::time_point upstream_done_at_{};
  trace::Clock::time_point upstream_done_ts_{};
  std::string outcome_;
  std::shared_ptr<const SummaryPart> summary_part_;
  std::vector<trace::Event> events_;  // emitted in the current burst, committed at its end
  SteadyClock::time_point start_{};
  SteadyClock::time_point last_activity_{};
  std::uint64_t c2s_ = 0;
  std::uint64_t s2c_ = 0;
  // --audit-clients only: the client's address and the scenario this connection presents.
  std::unique_ptr<AuditState> audit_;
  std::unique_ptr<ProbeSpec> probe_;  // set for a probe: there is no client leg
  SocketFacts* facts_ = nullptr;
  const tls::ClientIdentity* client_identity_ = nullptr;  // presented upstream if asked (mutual TLS)
  std::unique_ptr<StartTlsMachine> starttls_;             // during a STARTTLS preamble
  SteadyClock::time_point handshake_from_{};              // after a STARTTLS preamble: the handshake's start
  std::unique_ptr<PassState> pass_;                       // set for a passthrough connection
  const config::UpstreamProxy* via_ = nullptr;            // the upstream connection goes through this proxy
};

// A client refused at accept time (--max-connections: 503, a non-loopback client without
// --allow-remote: 403): the conn.refused event and, where the front end answers refusals, the HTTP
// response to write before closing.
struct Refusal {
  trace::Event event;
  std::string response;  // empty: just close
};
[[nodiscard]] Refusal refuseConnection(std::uint64_t id, const std::string& client, const std::string& reason,
                                       bool answer_http, int status = 503,
                                       std::optional<std::string> cause = std::nullopt);

// A complete HTTP/1.1 response with a text/plain body and Connection: close.
[[nodiscard]] std::string httpErrorResponse(int status, const std::string& reason,
                                            const std::string& extra_headers = {});

}  // namespace tlstrace::session
