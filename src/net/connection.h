// One proxied connection: the client socket, the upstream socket, a TLS engine on each, and the
// relay between them. Everything runs on one thread (the io_context's), so no locks.
#pragma once
#include <array>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "analysis/fingerprint.h"
#include "analysis/summary.h"
#include "net/services.h"
#include "tls/cert_summary.h"
#include "tls/engine.h"
#include "tls/keys.h"
#include "trace/decoder.h"
#include "trace/event.h"

namespace tlstrace::net {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

// How a handshake failure showed itself on the transport, for the diagnosis.
struct ErrorFacts {
  bool reset = false;
  bool closed = false;
  bool timeout = false;
};

// conn.summary's handshake part, rendered once both legs of a connection are established; shared
// between the connections of one io thread whose parts are equal. Parsed back at the first close
// that needs it and kept parsed for the next ones (a copy costs less than a parse).
struct SummaryPart {
  std::string text;
  mutable std::optional<trace::Json> tree;  // only ever touched on the part's own io thread
};

class Connection : public std::enable_shared_from_this<Connection> {
 public:
  Connection(tcp::socket client, const Services& svc, std::uint64_t id, std::function<void(std::uint64_t)> on_done);
  ~Connection();
  void start();
  // Shutdown: close both legs politely (close_notify, FIN), then finish.
  void stop(const std::string& why);
  // Writes out what the last burst of work traced (called by every handler on exit).
  void tapCommit();

 private:
  using SteadyClock = std::chrono::steady_clock;
  enum class State {
    ReadingRequest,
    Connecting,
    PeekingHello,
    UpstreamHandshake,
    ClientHandshake,
    Relaying,
    Closing,
    Done
  };

  struct Leg;
  struct Observer : tls::TlsEngine::Observer {
    Connection* conn = nullptr;
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

  struct Leg {
    Leg(tcp::socket s, trace::Leg w, tls::CertSummaryCache* certs);
    tcp::socket sock;
    trace::Leg which;
    std::unique_ptr<tls::TlsEngine> tls;
    Observer obs;
    std::vector<std::uint8_t> pending;  // raw bytes to send before any TLS output
    std::vector<std::uint8_t> wbuf;     // in flight
    bool open = false;
    bool reading = false;
    bool writing = false;
    bool paused = false;  // not reading because the other leg is still writing
    bool eos = false;     // the peer finished sending (FIN or close_notify)
    bool fin_seen = false;
    bool shut_after_flush = false;
    bool shut_sent = false;
    bool dead = false;       // reset or error: nothing more to send or receive
    bool compacted = false;  // handshake buffers given back
    std::string by;          // who closed first: "peer" or "proxy"
    std::string how;         // "fin", "rst", "timeout", "error"
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
    // TLS 1.3 application traffic secrets (for KeyUpdate), only kept with --log-secrets.
    tls::SecretBytes app_secret_client, app_secret_server;
  };

  // Events.
  void emit(trace::Leg leg, std::string name, trace::Json fields);
  // tls.record and data, once per record or chunk: flat fields, no Json (callers check the category).
  void emitFlat(trace::Leg leg, std::string_view name, const trace::FlatFields& flat);
  // Appended to events_, fields left to fill; the name (std::string&& or std::string_view) is
  // constructed in place, once.
  template <class Name>
  trace::Event& newEvent(trace::Leg leg, Name&& name);
  [[nodiscard]] bool tracing(trace::Category c) const;

  // Front end.
  void readRequest();
  void onRequestBytes();
  void respondAndClose(int status, const std::string& reason, const std::string& extra_headers = {});
  void connectUpstream(std::function<void()> on_connected, std::function<void(int, const std::string&)> on_failed);
  void peekHello();
  void onHelloBytes();
  void traceClientHello(std::span<const std::uint8_t> message);
  // tls.error (cause not_tls) for bytes that are not a usable ClientHello, then close.
  void refuseNotTls(const std::string& reason, bool close = true);

  // TLS.
  void startUpstreamTls();
  void stepUpstreamHandshake();
  void startClientTls();
  void stepClientHandshake();
  void abortClientHandshake(const std::string& why);
  void traceTlsError(Leg& l, const std::string& reason, const std::string& stage, ErrorFacts facts = ErrorFacts{});
  void onEstablished(Leg& l, SteadyClock::time_point at = SteadyClock::now());
  // The upstream leg's established-time trace work (its last messages, tls.trust,
  // tls.established) waits until the client's first flight is sent; it runs before any other
  // event of the connection, stamped with the time the handshake completed.
  void settleUpstream();
  void traceTrust(SSL* ssl, const std::string& verify_name);  // tls.trust for the upstream leg
  [[nodiscard]] static analysis::LegReport legReport(const Leg& l);
  [[nodiscard]] trace::Json fingerprints(Leg& l, bool client_hello);  // JA3/JA4 (or JA3S/JA4S) of a hello
  void settleSummary();
  void deriveKeys(Leg& l, std::string_view label, const std::vector<std::uint8_t>& client_random,
                  const std::vector<std::uint8_t>& secret);
  void emitKeys(Leg& l, const char* direction, const std::string& epoch, const tls::TrafficKeys& k);
  void onKeyUpdate(Leg& l, bool from_client);
  [[nodiscard]] bool fromClient(const Leg& l, bool sent) const { return &l == &client_ ? !sent : sent; }

  // Relay.
  void startRelay();
  void readFrom(Leg& l);
  void onRead(Leg& l, std::span<const std::uint8_t> bytes);
  void step(Leg& l, std::span<const std::uint8_t> bytes);  // onRead's work, by state
  // Waits until `l` is readable, then reads what is there into the thread's buffer: an idle
  // connection holds no read buffer of its own.
  template <typename F>
  void readSome(Leg& l, F on_bytes);
  [[nodiscard]] static std::size_t queued(const Leg& l);
  void onReadError(Leg& l, const boost::system::error_code& ec);
  void relay(Leg& src, std::span<const std::uint8_t> plain_in);
  [[nodiscard]] bool passOn(Leg& src, Leg& dst, std::span<const std::uint8_t> plain);  // false: dst failed
  void endOfStream(Leg& src);
  void flush(Leg& l);
  void onDrained(Leg& l);
  void resumeOther(Leg& l);
  void abortLeg(Leg& l, const std::string& how, const std::string& why);
  void closeGracefully(const std::string& outcome);
  void maybeFinish();
  void finish();
  Leg& other(Leg& l) { return &l == &client_ ? upstream_ : client_; }

  // Capture (--pcap): inbound = received by the proxy on that leg.
  void tapOpen(Leg& l);
  void markOpen(Leg& l, SteadyClock::time_point at);  // TCP established: socket options, timing
  void tapData(Leg& l, bool inbound, std::span<const std::uint8_t> bytes);
  void tapFin(Leg& l, bool inbound);
  void tapRst(Leg& l, bool inbound);
  struct CommitOnExit;

  // Timers.
  void armWatchdog();
  void onWatchdog();
  void touch() { last_activity_ = SteadyClock::now(); }

  const Services& svc_;
  std::uint64_t id_;
  std::function<void(std::uint64_t)> on_done_;
  Leg client_;
  Leg upstream_;
  tcp::resolver resolver_;
  asio::steady_timer watchdog_;
  asio::steady_timer connect_timer_;
  State state_ = State::ReadingRequest;
  std::vector<std::uint8_t> inbuf_;  // request head / ClientHello bytes, replayed, never dropped
  std::string target_host_;
  std::uint16_t target_port_ = 0;
  std::string sni_;
  std::vector<std::string> client_alpn_;
  std::string alpn_choice_;
  bool alpn_known_ = false;
  int abort_alert_ = 0;
  bool hello_traced_ = false;            // the client's ClientHello was traced from the raw bytes
  trace::Clock::time_point event_ts_{};  // set while deferred messages are replayed: their time
  bool upstream_settle_pending_ = false;
  SteadyClock::time_point upstream_done_at_{};
  trace::Clock::time_point upstream_done_ts_{};
  std::string outcome_;
  std::shared_ptr<const SummaryPart> summary_part_;
  std::vector<trace::Event> events_;  // emitted in the current handler, queued at its end
  SteadyClock::time_point start_;
  SteadyClock::time_point last_activity_;
  std::uint64_t c2s_ = 0;
  std::uint64_t s2c_ = 0;
  bool finished_ = false;
};

}  // namespace tlstrace::net
