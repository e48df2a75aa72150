# http_limits.sh: the server's limits from rapport.json: a slow client (or an
# idle one) is disconnected after the idle timeout, connections beyond the
# cap are refused with 503, bodies beyond the limit with 413; the server keeps
# answering others meanwhile.
. "$(dirname "$0")/lib.sh" "$@"

assert_exit 0 "$RAPPORT" init
echo '{"http_idle_timeout_ms": 500, "http_max_connections": 5, "http_max_body_bytes": 100}' >"$TMP/rapport.json"
assert_exit 0 "$RAPPORT" keys create --role operator
KEY=$OUT
serve_start

python3 - "$PORT" "$KEY" <<'PY' || fail "limit checks failed"
import socket, sys, time
port, key = int(sys.argv[1]), sys.argv[2]
def conn():
    return socket.create_connection(("127.0.0.1", port), timeout=5)
def read_all(s):
    data = b""
    while True:
        try:
            chunk = s.recv(65536)
        except ConnectionResetError:
            return data
        if not chunk: return data
        data += chunk
# A slow client: half a request line, then silence. It is cut off after the
# idle timeout (0.5 s), without an answer, while others are served.
slow = conn()
slow.sendall(b"GET /heal")
t0 = time.time()
other = conn()
other.sendall(b"GET /healthz HTTP/1.1\r\nConnection: close\r\n\r\n")
assert read_all(other).startswith(b"HTTP/1.1 200"), "served while a slow client waits"
assert read_all(slow) == b"", "the slow client got an answer"
waited = time.time() - t0
assert 0.3 < waited < 3, f"cut off after {waited:.2f} s"
# An idle keep-alive connection is closed too.
idle = conn()
idle.sendall(b"GET /healthz HTTP/1.1\r\n\r\n")
time.sleep(1.2)
data = read_all(idle)
assert data.startswith(b"HTTP/1.1 200") and data.count(b"HTTP/1.1") == 1, data
# Five connections open: the sixth is refused with 503.
held = [conn() for _ in range(5)]
time.sleep(0.1)
extra = conn()
assert read_all(extra).startswith(b"HTTP/1.1 503"), "connection cap"
for s in held: s.close()
time.sleep(0.2)
# A body over 100 bytes: 413.
big = conn()
body = b'{"type": "t", "external_id": "' + b"x" * 200 + b'"}'
big.sendall(b"POST /v1/events HTTP/1.1\r\nContent-Type: application/json\r\nAuthorization: Bearer "
            + key.encode() + b"\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
assert read_all(big).startswith(b"HTTP/1.1 413"), "body limit"
print("limits ok")
PY
kill -TERM "$pid"
wait "$pid" || fail "serve exited with $?"
echo "http_limits: ok"
