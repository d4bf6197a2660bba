"""More real clients through the proxy: GnuTLS (gnutls-cli) and Node.js, in both modes."""
import os
import shutil
import subprocess

from harness import DEADLINE, ProxyTestCase, of, run


class Clients(ProxyTestCase):
    def test_gnutls_cli_reverse(self):
        srv = self.s_server()
        p = self.proxy("-m", "reverse", "-u", f"localhost:{srv.port}", "--upstream-ca", self.pki.ca)
        r = run(["gnutls-cli", "--x509cafile", p.ca, "-p", str(p.port), "localhost"], input=b"GET / HTTP/1.0\r\n\r\n",
                timeout=DEADLINE)
        self.assertIn(b"HTTP/1.0 200 ok", r.stdout, r.stderr)
        evs = p.conn_closed()
        hello = of(evs, "tls.message", "client")[0]
        self.assertEqual(hello["type"], "ClientHello")
        self.assertEqual(hello["body"]["sni"], "localhost")
        self.assertEqual(of(evs, "tls.established", "client")[0]["version"], "TLSv1.3")

    def test_node_https_through_connect(self):
        srv = self.s_server("-alpn", "http/1.1")
        p = self.proxy("--upstream-ca", self.pki.ca)
        script = f"""
const http = require('http'), tls = require('tls'), fs = require('fs');
const req = http.request({{host: '127.0.0.1', port: {p.port}, method: 'CONNECT', path: 'localhost:{srv.port}'}});
req.on('connect', (res, socket) => {{
  const t = tls.connect({{socket, servername: 'localhost', ca: fs.readFileSync('{p.ca}'), ALPNProtocols: ['http/1.1']}}, () => {{
    t.write('GET / HTTP/1.0\\r\\n\\r\\n');
  }});
  let data = '';
  t.on('data', d => data += d);
  t.on('end', () => {{ console.log(t.alpnProtocol + ' ' + data.split('\\r\\n')[0]); }});
  t.on('error', e => {{ console.error(e.message); process.exit(1); }});
}});
req.end();
"""
        r = run(["node", "-e", script], timeout=DEADLINE)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout.decode().strip(), "http/1.1 HTTP/1.0 200 ok")
        evs = p.conn_closed()
        self.assertEqual(of(evs, "tls.established", "client")[0]["alpn"], "http/1.1")


if __name__ == "__main__":
    import unittest
    unittest.main()
