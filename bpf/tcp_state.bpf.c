// SPDX-License-Identifier: GPL-2.0
// The kernel's TCP state transitions of the proxy's own sockets (--tcp-states), from the
// sock:inet_sock_set_state tracepoint. CO-RE: vmlinux.h is dumped from the build machine's BTF and
// libbpf relocates the field offsets to the running kernel at load time.
//
// Which sockets: a transition made by the proxy's own process (connect, close, shutdown) marks the
// socket; one made in softirq context (a SYN, FIN or RST that arrived) runs under whatever task
// was current, so it is matched by socket address (marked before) or by the local port of one of
// the proxy's listeners (a child socket born in SYN_RECV). Marks are dropped at CLOSE.
#include "vmlinux.h"

#include <bpf/bpf_core_read.h>
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "GPL";

const volatile __u32 target_tgid = 0;

struct tcp_state_event {
  __u64 ns;  // bpf_ktime_get_ns (CLOCK_MONOTONIC)
  __u64 sk;  // the socket's kernel address: ties a child's first transition (no addresses yet) to it
  __u32 oldstate, newstate;
  __u16 family, sport, dport;  // host order
  __u16 err;                   // sk_err at the transition (a reset: ECONNRESET, EPIPE)
  __u8 saddr[16], daddr[16];   // v4 in the first 4 bytes
};

struct {
  __uint(type, BPF_MAP_TYPE_RINGBUF);
  __uint(max_entries, 1 << 20);
} events SEC(".maps");

// Local ports of the proxy's listeners (set from user space before the first accept).
struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, 16);
  __type(key, __u16);
  __type(value, __u8);
} listen_ports SEC(".maps");

// The proxy's sockets seen so far, by kernel address; LRU so that a lost CLOSE cannot fill it.
struct {
  __uint(type, BPF_MAP_TYPE_LRU_HASH);
  __uint(max_entries, 65536);
  __type(key, __u64);
  __type(value, __u8);
} socks SEC(".maps");

#define TCP_CLOSE_STATE 7
#define PROTO_TCP 6
#define AF_INET6_NUM 10

SEC("tracepoint/sock/inet_sock_set_state")
int on_set_state(struct trace_event_raw_inet_sock_set_state* ctx) {
  if (ctx->protocol != PROTO_TCP) return 0;
  __u64 sk = (__u64)ctx->skaddr;
  __u16 sport = ctx->sport;
  const __u8 one = 1;
  int ours = bpf_map_lookup_elem(&socks, &sk) != 0;
  if (!ours && (__u32)(bpf_get_current_pid_tgid() >> 32) == target_tgid) ours = 1;
  if (!ours && bpf_map_lookup_elem(&listen_ports, &sport)) ours = 1;
  if (!ours) return 0;
  if (ctx->newstate == TCP_CLOSE_STATE) bpf_map_delete_elem(&socks, &sk);
  else bpf_map_update_elem(&socks, &sk, &one, BPF_ANY);

  struct tcp_state_event* e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
  if (!e) return 0;
  e->ns = bpf_ktime_get_ns();
  e->sk = sk;
  e->oldstate = ctx->oldstate;
  e->newstate = ctx->newstate;
  e->family = ctx->family;
  e->sport = sport;
  e->dport = ctx->dport;
  e->err = (__u16)BPF_CORE_READ((struct sock*)ctx->skaddr, sk_err);
  if (ctx->family == AF_INET6_NUM) {
    __builtin_memcpy(e->saddr, ctx->saddr_v6, 16);
    __builtin_memcpy(e->daddr, ctx->daddr_v6, 16);
  } else {
    __builtin_memset(e->saddr, 0, 16);
    __builtin_memset(e->daddr, 0, 16);
    __builtin_memcpy(e->saddr, ctx->saddr, 4);
    __builtin_memcpy(e->daddr, ctx->daddr, 4);
  }
  bpf_ringbuf_submit(e, 0);
  return 0;
}
