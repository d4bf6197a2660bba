"""Network namespaces for the tests that need real non-loopback paths: the test creates them and
deletes them, and nothing outside them is touched (the veth pairs are made inside the middle
namespace, so the host never holds them even briefly)."""
import os
import secrets
import shutil

from harness import run


def why_no_netns(tools=(), probe=None):
    """None when namespaces can be made here and every (tool, package) in `tools` is installed;
    otherwise the reason to skip. `probe(ns)` may check a kernel feature inside a scratch namespace
    and return its own reason."""
    if os.geteuid() != 0:
        return "needs root for ip netns"
    for tool, pkg in (("ip", "iproute2"), *tools):
        if not shutil.which(tool):
            return f"{tool} not installed ({pkg}; tools/deps.sh --test)"
    name = "tlstrace-probe-" + secrets.token_hex(3)
    r = run(["ip", "netns", "add", name])
    if r.returncode != 0:
        return "ip netns add failed: " + r.stderr.decode().strip()
    try:
        return probe(name) if probe else None
    finally:
        run(["ip", "netns", "delete", name])


class ThreeNamespaces:
    """Namespaces c (client), m (middle) and s (server): c's veth ⇄ m's (the client side) and m's
    veth ⇄ s's (the server side), each pair on a /24 of its own. `routed` gives c and s default
    routes through m and lets m forward (a router); without it the middle ends TCP on both sides (a
    proxy). `addrs` = (client, middle toward client, middle toward server, server); `devs` =
    (middle's toward client, client's, middle's toward server, server's)."""

    def __init__(self, addrs, devs, routed=False):
        tag = secrets.token_hex(3)
        self.c, self.m, self.s = (f"tlstrace-{tag}-{n}" for n in ("c", "m", "s"))
        self.names = []
        client, mid_c, mid_s, server = addrs
        m_c, c_dev, m_s, s_dev = devs
        try:
            for n in (self.c, self.m, self.s):
                self.sh(["ip", "netns", "add", n])
                self.names.append(n)
                self.sh(["ip", "-n", n, "link", "set", "lo", "up"])
            self.sh(["ip", "-n", self.m, "link", "add", m_c, "type", "veth", "peer", "name", c_dev, "netns", self.c])
            self.sh(["ip", "-n", self.m, "link", "add", m_s, "type", "veth", "peer", "name", s_dev, "netns", self.s])
            for ns, dev, addr in ((self.m, m_c, mid_c), (self.c, c_dev, client), (self.m, m_s, mid_s),
                                  (self.s, s_dev, server)):
                self.sh(["ip", "-n", ns, "addr", "add", addr + "/24", "dev", dev])
                self.sh(["ip", "-n", ns, "link", "set", dev, "up"])
            if routed:
                self.sh(["ip", "-n", self.c, "route", "add", "default", "via", mid_c])
                self.sh(["ip", "-n", self.s, "route", "add", "default", "via", mid_s])
                self.sh(self.exec(self.m, "sysctl", "-qw", "net.ipv4.ip_forward=1"))
        except Exception:
            self.delete()
            raise

    @staticmethod
    def sh(cmd):
        r = run(cmd)
        if r.returncode != 0:
            raise RuntimeError(" ".join(cmd) + ": " + r.stderr.decode())
        return r.stdout.decode()

    @staticmethod
    def exec(ns, *cmd):
        return ["ip", "netns", "exec", ns, *cmd]

    def delete(self):
        for n in reversed(self.names):
            run(["ip", "netns", "delete", n])  # ends the veths and any rules with them
        self.names = []
