#!/usr/bin/env bash
# The Docker "get started" walkthrough (parts 1-4), against a berth daemon, with every result
# checked. `cargo xtask demo` runs it with the berth CLI; the test suite runs it again with the
# real docker CLI (DOCKER_BUILDKIT=0).
#
# It must run inside a private network namespace with `lo` up (the caller makes one), so that
# localhost:4000 and the registry on 127.0.0.1 are this namespace's own and nothing leaves the
# machine. Inputs, all required:
#   CLI          the client: "berth -H unix:///path" or "docker" (with DOCKER_HOST set)
#   WORK         a scratch directory
#   CERTS_D      the daemon's --certs-dir (the registry's CA is written there)
#   EXAMPLES     examples/friendlyhello
#   PYTHON_TAR   a Debian python3 + flask + redis rootfs tarball (cargo xtask rootfs python)
#   REDIS_TAR    a Debian redis-server rootfs tarball (cargo xtask rootfs redis)
#   BUSYBOX_TAR  a busybox rootfs tarball
set -euo pipefail

: "${CLI:?}" "${WORK:?}" "${CERTS_D:?}" "${EXAMPLES:?}" "${PYTHON_TAR:?}" "${REDIS_TAR:?}" "${BUSYBOX_TAR:?}"
REGISTRY=127.0.0.1:5443
NAME=$(basename "${CLI%% *}")
export DOCKER_BUILDKIT=0
export DOCKER_CONFIG="$WORK/client-config"
export REGISTRY_AUTH_FILE="$WORK/client-config/auth.json" # podman's, when CLI is podman
T0=$(date +%s%N)

say() { printf '\n\033[1m%s\033[0m\n' "$*"; }
# Print a command as the tutorial shows it, then run it with our client.
step() {
	printf '\n$ %s %s\n' "$NAME" "$*"
	$CLI "$@"
}
fail() {
	echo "walkthrough: FAILED: $*" >&2
	exit 1
}
fetch() {
	python3 - "$1" <<'EOF'
import sys, time, urllib.request
for _ in range(100):
    try:
        print(urllib.request.urlopen(sys.argv[1], timeout=2).read().decode())
        sys.exit(0)
    except Exception as e:
        err = e
        time.sleep(0.1)
print(f"cannot fetch {sys.argv[1]}: {err}", file=sys.stderr)
sys.exit(1)
EOF
}

REGISTRY_PID=
cleanup() {
	$CLI rm -f web web2 redis >/dev/null 2>&1 || true
	$CLI network rm friendly >/dev/null 2>&1 || true
	[ -n "$REGISTRY_PID" ] && kill "$REGISTRY_PID" 2>/dev/null || true
}
trap cleanup EXIT
mkdir -p "$WORK" "$DOCKER_CONFIG"
[ -f "$REGISTRY_AUTH_FILE" ] || echo "{}" >"$REGISTRY_AUTH_FILE"

say "== Part 1: orientation =="
step version
step info >/dev/null && echo "(info: ok)"
# No registry on this machine serves hello-world: make it from busybox.
$CLI import -c 'CMD ["echo", "Hello from berth!"]' "$BUSYBOX_TAR" hello-world >/dev/null
out=$(step run hello-world)
echo "$out"
[[ $out == *"Hello from berth!"* ]] || fail "hello-world printed: $out"
step images
step ps -a

say "== Part 2: containers =="
# The base images come from Debian's packages (see examples/friendlyhello/README.md).
$CLI import -c 'CMD ["python3"]' "$PYTHON_TAR" berth.local/python:3-debian >/dev/null
$CLI import -c 'CMD ["redis-server", "--protected-mode", "no"]' "$REDIS_TAR" berth.local/redis:7-debian >/dev/null
rm -rf "$WORK/friendlyhello"
cp -r "$EXAMPLES" "$WORK/friendlyhello"
cd "$WORK/friendlyhello"
echo "$ ls"
ls
step build -t friendlyhello .
step images
step network create friendly >/dev/null
step run -d --name redis --network friendly berth.local/redis:7-debian >/dev/null
step run -d --name web --network friendly -p 4000:80 friendlyhello >/dev/null
step ps
echo "$ curl http://localhost:4000"
page1=$(fetch http://localhost:4000)
echo "$page1"
page2=$(fetch http://localhost:4000)
echo "$page2"
host=$($CLI exec web cat /etc/hostname)
[[ $page1 == *"Hello World!"* ]] || fail "no greeting: $page1"
[[ $page1 == *"$host"* ]] || fail "the page does not show the container's hostname $host: $page1"
n1=$(grep -o '[0-9]\+' <<<"${page1##*Visits:}" | head -1)
n2=$(grep -o '[0-9]\+' <<<"${page2##*Visits:}" | head -1)
[[ -n $n1 && -n $n2 && $n2 -gt $n1 ]] || fail "the visit counter did not increase ($n1 then $n2)"
step container stop web

say "== Part 3: share the image =="
mkdir -p "$WORK/registry" "$CERTS_D/$REGISTRY"
# A CA of our own, and the registry's certificate signed by it (as a real deployment has).
R=$WORK/registry
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=walkthrough CA" \
	-keyout "$R/ca.key" -out "$R/ca.pem" 2>/dev/null
openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" \
	-keyout "$R/key.pem" -out "$R/req.csr" 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\n' >"$R/san.ext"
openssl x509 -req -in "$R/req.csr" -CA "$R/ca.pem" -CAkey "$R/ca.key" -CAcreateserial \
	-days 2 -extfile "$R/san.ext" -out "$R/cert.pem" 2>/dev/null
cp "$R/ca.pem" "$CERTS_D/$REGISTRY/ca.crt"
htpasswd -Bbn username s3cret >"$WORK/registry/htpasswd"
cat >"$WORK/registry/config.yml" <<EOF
version: 0.1
storage:
  filesystem:
    rootdirectory: $WORK/registry/data
http:
  addr: $REGISTRY
  tls:
    certificate: $WORK/registry/cert.pem
    key: $WORK/registry/key.pem
auth:
  htpasswd:
    realm: walkthrough
    path: $WORK/registry/htpasswd
EOF
# (the registry reads REGISTRY_* variables as configuration: keep podman's out of it)
env -u REGISTRY_AUTH_FILE docker-registry serve "$WORK/registry/config.yml" >"$WORK/registry/log" 2>&1 &
REGISTRY_PID=$!
for _ in $(seq 100); do
	python3 -c "import socket; socket.create_connection(('127.0.0.1', 5443), 1)" 2>/dev/null && break
	sleep 0.1
done
echo "$ $NAME login $REGISTRY -u username --password-stdin"
echo s3cret | $CLI login $REGISTRY -u username --password-stdin
step tag friendlyhello $REGISTRY/username/get-started:part2
push=$(step push $REGISTRY/username/get-started:part2)
echo "$push"
# What the registry now serves under the tag, asked over HTTPS with the password.
digest=$(python3 - "$R/ca.pem" <<'EOF'
import base64, ssl, sys, urllib.request
req = urllib.request.Request(
    "https://127.0.0.1:5443/v2/username/get-started/manifests/part2", method="HEAD",
    headers={"Authorization": "Basic " + base64.b64encode(b"username:s3cret").decode(),
             "Accept": "application/vnd.oci.image.manifest.v1+json,"
                       "application/vnd.docker.distribution.manifest.v2+json"})
ctx = ssl.create_default_context(cafile=sys.argv[1])
print(urllib.request.urlopen(req, context=ctx).headers["Docker-Content-Digest"])
EOF
)
[[ $digest == sha256:* ]] || fail "the registry has no part2 manifest"
reported=$(grep -o 'sha256:[0-9a-f]\{64\}' <<<"$push" | tail -1 || true)
[[ -z $reported || $reported == "$digest" ]] || fail "push reported $reported, the registry has $digest"
step rm -f web >/dev/null
step rmi friendlyhello $REGISTRY/username/get-started:part2
step run -d --name web2 --network friendly -p 4000:80 $REGISTRY/username/get-started@$digest
page3=$(fetch http://localhost:4000)
echo "$page3"
[[ $page3 == *"Hello World!"* ]] || fail "the pulled image does not serve the page: $page3"
step images

say "== More commands: exec, commit, search, rmi =="
echo "$ $NAME exec -it web2 sh -c 'ls /app'"
script -qec "$CLI exec -it web2 sh -c 'ls /app'" /dev/null | tee "$WORK/exec.out"
grep -q app.py "$WORK/exec.out" || fail "exec -it did not list /app"
step commit web2 friendlyhello:snapshot
step search $REGISTRY/username
search=$($CLI search $REGISTRY/username)
[[ $search == *"get-started"* ]] || fail "search did not find the pushed repository: $search"
step rm -f web2 redis >/dev/null
step rmi friendlyhello:snapshot
step logout $REGISTRY
T1=$(date +%s%N)
say "walkthrough: all steps passed in $(((T1 - T0) / 1000000)) ms"
