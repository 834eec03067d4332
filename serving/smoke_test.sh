#!/usr/bin/env bash
# Smoke test of a running TF Serving with a keyclass model, over REST (curl) and gRPC
# (the python client). Run from the repository root with the keyclass venv active:
#
#   serving/smoke_test.sh MODEL_NAME IMAGE [REST_URL] [GRPC_TARGET]
#   serving/smoke_test.sh circle-square-triangle-e03fd154 cat.jpg http://localhost:8501 localhost:8500
#
# Checks: the model has an AVAILABLE version; its metadata lists the grad_cam
# signatures; REST predict (serving_default) and REST grad_cam answer with a class and
# a heatmap; the same two calls over gRPC. Exits non-zero at the first failure.
# Environment: PYTHON (default: python3), CURL_TIMEOUT (default 30 s).
set -euo pipefail

if [[ $# -lt 2 ]]; then
  sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'
  exit 2
fi
MODEL=$1
IMAGE=$2
REST=${3:-http://localhost:8501}
GRPC=${4:-localhost:8500}
PYTHON=${PYTHON:-python3}
CURL=(curl -sS --max-time "${CURL_TIMEOUT:-30}")
[[ -r $IMAGE ]] || { echo "FAIL: cannot read image $IMAGE" >&2; exit 1; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

fail() { echo "FAIL: $*" >&2; exit 1; }
ok() { echo "ok   $*"; }

# 1. Status: 200 alone is not enough (it answers 200 while LOADING); read the state.
code=$("${CURL[@]}" -o "$tmp/status.json" -w '%{http_code}' "$REST/v1/models/$MODEL") || fail "REST $REST unreachable"
[[ $code == 200 ]] || fail "status HTTP $code: $(cat "$tmp/status.json")"
grep -Eq '"state" *: *"AVAILABLE"' "$tmp/status.json" || fail "no AVAILABLE version: $(cat "$tmp/status.json")"
ok "REST status: $MODEL has an AVAILABLE version"

# 2. Metadata: the signatures keyclass exports.
code=$("${CURL[@]}" -o "$tmp/metadata.json" -w '%{http_code}' "$REST/v1/models/$MODEL/metadata")
[[ $code == 200 ]] || fail "metadata HTTP $code: $(cat "$tmp/metadata.json")"
for sig in serving_default grad_cam grad_cam_class; do
  grep -q "\"$sig\"" "$tmp/metadata.json" || fail "metadata lists no signature $sig"
done
ok "REST metadata: serving_default, grad_cam, grad_cam_class"

# 3. REST predict and grad_cam with the image as {"b64": ...}.
b64=$(base64 < "$IMAGE" | tr -d '\n')
for sig in serving_default grad_cam; do
  printf '{"signature_name": "%s", "inputs": {"images": [{"b64": "%s"}]}}' "$sig" "$b64" > "$tmp/req.json"
  code=$("${CURL[@]}" -o "$tmp/$sig.json" -w '%{http_code}' -H 'Content-Type: application/json' \
    --data-binary "@$tmp/req.json" "$REST/v1/models/$MODEL:predict")
  [[ $code == 200 ]] || fail "REST $sig HTTP $code: $(head -c 500 "$tmp/$sig.json")"
  grep -q '"class_name"' "$tmp/$sig.json" || fail "REST $sig: no class_name in $(head -c 500 "$tmp/$sig.json")"
  if [[ $sig == grad_cam ]]; then
    grep -q '"heatmap"' "$tmp/$sig.json" || fail "REST grad_cam: no heatmap"
  fi
  ok "REST $sig: $(grep -o '"class_name": *\[[^]]*\]' "$tmp/$sig.json" | tr -d ' \n')"
done

# 4. gRPC: status, metadata, predict and grad_cam through keyclass's python client.
"$PYTHON" -m keyclass.serving.predictor --server "grpc://$GRPC" --model "$MODEL" \
  --signatures serving_default,grad_cam "$IMAGE" > "$tmp/grpc.json" || fail "gRPC client failed (see above)"
"$PYTHON" - "$tmp/grpc.json" <<'PY' || fail "gRPC answer incomplete: $(cat "$tmp/grpc.json")"
import json, sys
r = json.load(open(sys.argv[1]))
assert any(s["state"] == "AVAILABLE" for s in r["status"]), r["status"]
assert {"serving_default", "grad_cam", "grad_cam_class"} <= set(r["signatures"]), r["signatures"]
assert r["predictions"]["serving_default"][0]["class_name"], r
assert r["predictions"]["grad_cam"][0]["heatmap_shape"], r
print(f"ok   gRPC version {r['version']}: {r['predictions']['grad_cam'][0]['class_name']} "
      f"({r['predictions']['grad_cam'][0]['confidence']:.3f}), heatmap {r['predictions']['grad_cam'][0]['heatmap_shape']}")
PY
echo "smoke test passed: $MODEL on $REST and grpc://$GRPC"
