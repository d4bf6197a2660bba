// SPDX-License-Identifier: GPL-2.0
// The kernel's TCP state transitions of the proxy's own sockets (--tcp-states), from the
// sock:inet_sock_set_state tracepoint (BTF-typed: tp_btf). CO-RE: vmlinux.h is dumped from the build machine's BTF and
// libbpf relocates the field offsets to the running kernel at load time.
//
// Which sockets: a socket is marked and then followed by its kernel address until CLOSE. It is
// marked by a transition that only its owner's system call makes (connect: CLOSE -> SYN_SENT;
// close or shutdown: ESTABLISHED -> FIN_WAIT1, CLOSE_WAIT -> LAST_ACK, SYN_RECV -> FIN_WAIT1)
// made while the proxy's process is current, or by its birth as a child of one of the proxy's
// listeners (LISTEN -> SYN_RECV on a listener's local port). Any other transition in the proxy's
// context is not evidence: on loopback the peer's socket changes state in the softirq that the
// proxy's own send runs (its SYN_RECV -> ESTABLISHED when the proxy's handshake ACK arrives, its
// FIN_WAIT1 -> FIN_WAIT2 when the proxy ACKs its FIN, its -> CLOSE on the proxy's RST).
#include "vmlinux.h"

#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

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

// include/net/tcp_states.h
#define TCP_ESTABLISHED_STATE 1
#define TCP_SYN_SENT_STATE 2
#define TCP_SYN_RECV_STATE 3
#define TCP_FIN_WAIT1_STATE 4
#define TCP_CLOSE_STATE 7
#define TCP_CLOSE_WAIT_STATE 8
#define TCP_LAST_ACK_STATE 9
#define TCP_LISTEN_STATE 10
#define PROTO_TCP 6
#define AF_INET6_NUM 10

static __always_inline int by_syscall(int oldstate, int newstate) {
  return (oldstate == TCP_CLOSE_STATE && newstate == TCP_SYN_SENT_STATE) ||
         ((oldstate == TCP_ESTABLISHED_STATE || oldstate == TCP_SYN_RECV_STATE) && newstate == TCP_FIN_WAIT1_STATE) ||
         (oldstate == TCP_CLOSE_WAIT_STATE && newstate == TCP_LAST_ACK_STATE);
}

// A BTF-typed tracepoint: the kernel passes the socket itself (no tracefs needed, unlike a
// classic tracepoint), and CO-RE reads its fields wherever this kernel keeps them.
SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(on_set_state, const struct sock* sk, const int oldstate, const int newstate) {
  if (BPF_CORE_READ(sk, sk_protocol) != PROTO_TCP) return 0;
  __u64 skaddr = (__u64)sk;
  __u16 sport = BPF_CORE_READ(sk, __sk_common.skc_num);
  const __u8 one = 1;
  int ours = bpf_map_lookup_elem(&socks, &skaddr) != 0;
  if (!ours && by_syscall(oldstate, newstate) && (__u32)(bpf_get_current_pid_tgid() >> 32) == target_tgid)
    ours = 1;
  if (!ours && oldstate == TCP_LISTEN_STATE && newstate == TCP_SYN_RECV_STATE &&
      bpf_map_lookup_elem(&listen_ports, &sport))
    ours = 1;
  if (!ours) return 0;
  if (newstate == TCP_CLOSE_STATE) bpf_map_delete_elem(&socks, &skaddr);
  else bpf_map_update_elem(&socks, &skaddr, &one, BPF_ANY);

  struct tcp_state_event* e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
  if (!e) return 0;
  e->ns = bpf_ktime_get_ns();
  e->sk = skaddr;
  e->oldstate = oldstate;
  e->newstate = newstate;
  e->family = BPF_CORE_READ(sk, __sk_common.skc_family);
  e->sport = sport;
  e->dport = bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport));
  e->err = (__u16)BPF_CORE_READ(sk, sk_err);
  __builtin_memset(e->saddr, 0, 16);
  __builtin_memset(e->daddr, 0, 16);
  if (e->family == AF_INET6_NUM) {
    BPF_CORE_READ_INTO(&e->saddr, sk, __sk_common.skc_v6_rcv_saddr.in6_u.u6_addr8);
    BPF_CORE_READ_INTO(&e->daddr, sk, __sk_common.skc_v6_daddr.in6_u.u6_addr8);
  } else {
    BPF_CORE_READ_INTO((__u32*)e->saddr, sk, __sk_common.skc_rcv_saddr);
    BPF_CORE_READ_INTO((__u32*)e->daddr, sk, __sk_common.skc_daddr);
  }
  bpf_ringbuf_submit(e, 0);
  return 0;
}
