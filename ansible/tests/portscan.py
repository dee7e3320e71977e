"""TCP connect scan of one address (used by test_firewall.py; standard library only, so it also
runs as a script inside a network namespace: `ip netns exec NS python3 portscan.py ADDR`, the
ports as JSON on stdin, the result as JSON on stdout).

A port is "open" when the handshake completes, "refused" when the host answers with a reset,
"filtered" when nothing answers within the timeout (a firewall that drops). Connections are made
in bounded batches of non-blocking sockets, each batch waiting at most `timeout` seconds.
"""
import errno
import json
import selectors
import socket
import sys
import time

BATCH = 512


def scan(address, ports, timeout=1.0, batch=BATCH):
    """{"open": [...], "refused": [...], "filtered": [...], "seconds": s} for the given TCP ports."""
    result = {"open": [], "refused": [], "filtered": []}
    start = time.monotonic()
    ports = sorted(set(int(p) for p in ports))
    for i in range(0, len(ports), batch):
        sel = selectors.DefaultSelector()
        pending = {}
        for port in ports[i:i + batch]:
            sock = socket.socket(socket.AF_INET6 if ":" in address else socket.AF_INET, socket.SOCK_STREAM)
            sock.setblocking(False)
            rc = sock.connect_ex((address, port))
            if rc == 0:
                result["open"].append(port)
                sock.close()
            elif rc in (errno.EINPROGRESS, errno.EWOULDBLOCK):
                sel.register(sock, selectors.EVENT_WRITE, port)
                pending[sock] = port
            else:
                result["refused"].append(port)
                sock.close()
        deadline = time.monotonic() + timeout
        while pending and time.monotonic() < deadline:
            for key, _ in sel.select(max(0.0, deadline - time.monotonic())):
                sock, port = key.fileobj, key.data
                err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                result["open" if err == 0 else "refused"].append(port)
                sel.unregister(sock)
                sock.close()
                del pending[sock]
        for sock, port in pending.items():
            result["filtered"].append(port)
            sel.unregister(sock)
            sock.close()
        sel.close()
    result = {k: sorted(v) for k, v in result.items()}
    result["seconds"] = round(time.monotonic() - start, 2)
    return result


if __name__ == "__main__":
    print(json.dumps(scan(sys.argv[1], json.load(sys.stdin), float(sys.argv[2]) if len(sys.argv) > 2 else 1.0)))
