# http_many.sh: thousands of concurrent connections against a real `rapport
# serve`. 3000 clients connect at once (the server raises its open-files
# limit to fit its 4096-connection cap), each sends a request, half of them
# an authenticated customer read, and every one gets its answer on a
# connection kept alive for a second request, all within a bounded time;
# then the server stops gracefully with them open.
. "$(dirname "$0")/lib.sh" "$@"

assert_exit 0 "$RAPPORT" init
assert_exit 0 "$RAPPORT" keys create --role operator
KEY=$OUT
echo '{"email": "many@example.com", "attributes": {"plan": "pro"}}' >"$TMP/c.jsonl"
assert_exit 0 "$RAPPORT" import customers "$TMP/c.jsonl"
serve_start

N=$(python3 - "$PORT" "$KEY" <<'PY'
import resource, selectors, socket, sys, time
port, key = int(sys.argv[1]), sys.argv[2]
N = 3000
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
want = N + 100
if soft < want:
    if hard != resource.RLIM_INFINITY and hard < want:
        N = hard - 100
        print(f"note: the open files limit ({hard}) allows only {N} connections", file=sys.stderr)
    else:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
assert N >= 1000, f"only {N} connections possible here"

sel = selectors.DefaultSelector()
reqs = [
    b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /v1/customers/1 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + key.encode() + b"\r\n\r\n",
]
state = {}
t0 = time.time()
for i in range(N):
    s = socket.socket()
    s.setblocking(False)
    s.connect_ex(("127.0.0.1", port))
    state[s] = {"req": reqs[i % 2], "sent": 0, "buf": b"", "answers": 0}
    sel.register(s, selectors.EVENT_WRITE)
done = 0
deadline = t0 + 60
while done < N and time.time() < deadline:
    for k, ev in sel.select(timeout=1):
        s, st = k.fileobj, state[k.fileobj]
        if ev & selectors.EVENT_WRITE:
            try:
                s.send(st["req"])
            except (BlockingIOError, InterruptedError):
                continue
            sel.modify(s, selectors.EVENT_READ)
            continue
        chunk = s.recv(65536)
        assert chunk, f"connection closed after {st['answers']} answers: {st['buf'][:200]!r}"
        st["buf"] += chunk
        head, sep, rest = st["buf"].partition(b"\r\n\r\n")
        if not sep:
            continue
        length = int([l.split(b":")[1] for l in head.split(b"\r\n")
                      if l.lower().startswith(b"content-length")][0])
        if len(rest) < length:
            continue
        assert head.startswith(b"HTTP/1.1 200"), head[:200]
        if st["req"] is reqs[1]:
            assert b"many@example.com" in rest[:length], rest[:200]
        st["buf"] = rest[length:]
        st["answers"] += 1
        if st["answers"] == 2:
            done += 1
            sel.unregister(s)
        else:  # the same connection, kept alive, asks again
            sel.modify(s, selectors.EVENT_WRITE)
elapsed = time.time() - t0
assert done == N, f"{done} of {N} connections answered twice within {elapsed:.1f} s"
print(f"{N} connections, {2 * N} requests in {elapsed:.1f} s", file=sys.stderr)
# The server is still serving while all of them stay open.
extra = socket.create_connection(("127.0.0.1", port), timeout=10)
extra.sendall(b"GET /healthz HTTP/1.1\r\nConnection: close\r\n\r\n")
assert extra.recv(100).startswith(b"HTTP/1.1 200")
for s in state: s.close()
print(N)
PY
) || fail "concurrent connections failed"
assert_exit 0 "$RAPPORT" audit verify
kill -TERM "$pid"
wait "$pid" || fail "serve exited with $? after SIGTERM"
# Half the connections read the customer twice: one audit record per read.
assert_eq "$(sql "SELECT count(*) FROM audit_log WHERE action = 'customer.read' AND actor LIKE 'key:%'")" "$N" "audit records of the reads"
