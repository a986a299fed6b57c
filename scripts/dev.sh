#!/usr/bin/env bash
# `make dev`: builds, starts the local stack, seeds the demo trial and walks the main job as site
# staff would: ask for an upload URL, PUT a real DICOM file to it with curl, read the upload record.
# Then keeps serving until Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cargo build -q -p clinflow-local
py=.venv/bin/python
# Where cargo put it: target/, or CARGO_TARGET_DIR / build.target-dir when set.
target_dir=$(cargo metadata -q --format-version 1 --no-deps | "$py" -c "import json,sys; print(json.load(sys.stdin)['target_directory'])")
bin=$target_dir/debug/clinflow-local
export CLINFLOW_API_ADDR=${CLINFLOW_API_ADDR:-127.0.0.1:3000}

log=$(mktemp -t clinflow-dev.XXXXXX)
"$bin" up --seed-demo >"$log" 2>&1 &
stack=$!
trap 'kill $stack 2>/dev/null; wait $stack 2>/dev/null; rm -f "$log"' EXIT
for _ in $(seq 1 300); do
  grep -q "clinflow local stack ready" "$log" && break
  kill -0 $stack 2>/dev/null || { cat "$log"; echo "dev: the local stack did not start" >&2; exit 1; }
  sleep 0.2
done
grep "clinflow local stack ready" "$log"
api="http://$CLINFLOW_API_ADDR"

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
json() { "$py" -c "import json,sys; d=json.load(sys.stdin); print(eval('d'+sys.argv[1]))" "$1"; }

step "A dev token for site staff at SITE-BOS-01 (make token ROLE=site_staff SITES=SITE-BOS-01)"
token=$("$bin" token --role site_staff --sites SITE-BOS-01 --sub coordinator-bos | tail -n 1)
echo "${token:0:40}..."

file=$("$py" -c "from pydicom.data import get_testdata_file; print(get_testdata_file('CT_small.dcm'))")
size=$(stat -c %s "$file")
sha=$(sha256sum "$file" | cut -d' ' -f1)
step "POST /v1/uploads for subject SUBJ-0001: $(basename "$file"), $size bytes, sha256 $sha"
created=$(curl -sS -X POST "$api/v1/uploads" \
  -H "authorization: Bearer $token" -H 'content-type: application/json' -H 'x-correlation-id: demo-walk-1' \
  -d "{\"subjectId\":\"SUBJ-0001\",\"fileName\":\"CT_small.dcm\",\"contentType\":\"application/dicom\",\"sizeBytes\":$size,\"sha256\":\"$sha\"}")
echo "$created" | "$py" -m json.tool
upload_id=$(echo "$created" | json "['uploadId']")

step "PUT the file to the presigned URL, with exactly the headers the API returned"
curl_args=()
while IFS= read -r h; do curl_args+=(-H "$h"); done < <(echo "$created" | "$py" -c "
import json,sys
for k,v in json.load(sys.stdin)['upload']['headers'].items():
    if k != 'content-length': print(f'{k}: {v}')")
url=$(echo "$created" | json "['upload']['url']")
curl -sS -X PUT --data-binary @"$file" "${curl_args[@]}" -o /dev/null -w 'S3 answered %{http_code}\n' "$url"

step "S3 → ingest queue → process-dicom: SHA-256, malware scan and DICOM header in one streaming pass"
for _ in $(seq 1 100); do
  record=$(curl -sS "$api/v1/uploads/$upload_id" -H "authorization: Bearer $token")
  status=$(echo "$record" | json "['status']")
  case "$status" in PROCESSED|QUARANTINED|FAILED) break ;; esac
  sleep 0.2
done
echo "GET /v1/uploads/$upload_id"
echo "$record" | "$py" -m json.tool

step "Outcomes published for the next stage (imaging-events queue)"
aws=$(grep -o 'aws=[^ ]*' "$log" | head -n 1 | cut -d= -f2)
# The emulator enforces IAM: the stack printed its administrator's keys (local only).
admin_key=$(grep -o 'AWS_ACCESS_KEY_ID=[^ ]*' "$log" | head -n 1 | cut -d= -f2)
admin_secret=$(grep -o 'AWS_SECRET_ACCESS_KEY=[^ ]*' "$log" | head -n 1 | cut -d= -f2)
AWS_ACCESS_KEY_ID=${admin_key:-${AWS_ACCESS_KEY_ID:-testing}} AWS_SECRET_ACCESS_KEY=${admin_secret:-${AWS_SECRET_ACCESS_KEY:-testing}} \
"$py" - "$aws" "${CLINFLOW_STACK_NAME:-clinflow-local}-" <<'PY'
import sys, boto3
sqs = boto3.client("sqs", endpoint_url=sys.argv[1], region_name="us-east-1")
for url in sqs.list_queues(QueueNamePrefix=sys.argv[2]).get("QueueUrls", []):
    a = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])
    print(f"  {url.rsplit('/', 1)[1]}: {a['Attributes']['ApproximateNumberOfMessages']} message(s) waiting")
PY

step "An EICAR test file declared as DICOM is quarantined, never accepted"
eicar_file="$log.eicar"
printf '%s' 'X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*' > "$eicar_file"
esha=$(sha256sum "$eicar_file" | cut -d' ' -f1)
ecreated=$(curl -sS -X POST "$api/v1/uploads" -H "authorization: Bearer $token" -H 'content-type: application/json' \
  -d "{\"subjectId\":\"SUBJ-0001\",\"fileName\":\"suspicious.dcm\",\"contentType\":\"application/dicom\",\"sizeBytes\":68,\"sha256\":\"$esha\"}")
eid=$(echo "$ecreated" | json "['uploadId']")
eargs=()
while IFS= read -r h; do eargs+=(-H "$h"); done < <(echo "$ecreated" | "$py" -c "
import json,sys
for k,v in json.load(sys.stdin)['upload']['headers'].items():
    if k != 'content-length': print(f'{k}: {v}')")
curl -sS -X PUT --data-binary @"$eicar_file" "${eargs[@]}" -o /dev/null "$(echo "$ecreated" | json "['upload']['url']")"
for _ in $(seq 1 100); do
  erecord=$(curl -sS "$api/v1/uploads/$eid" -H "authorization: Bearer $token")
  case "$(echo "$erecord" | json "['status']")" in PROCESSED|QUARANTINED|FAILED) break ;; esac
  sleep 0.2
done
echo "$erecord" | "$py" -c "import json,sys; d=json.load(sys.stdin); print('  status:', d['status'], '| reason:', d.get('statusReason'), '| now at:', d.get('processing', {}).get('objectKey'))"
rm -f "$eicar_file"

step "A monitor at another site cannot see it (404, existence does not leak)"
other=$("$bin" token --role monitor --sites SITE-LYN-02 | tail -n 1)
curl -sS "$api/v1/uploads/$upload_id" -H "authorization: Bearer $other"; echo

step "Reference data: a drug code through the lock-free cache (refresh-cache published it at start)"
for _ in $(seq 1 50); do
  code=$(curl -sS -o /dev/null -w '%{http_code}' "$api/v1/metadata/drug_code/N02BE01" -H "authorization: Bearer $token")
  [ "$code" = 200 ] && break
  sleep 0.2
done
echo "GET /v1/metadata/drug_code/N02BE01"
curl -sS "$api/v1/metadata/drug_code/N02BE01" -H "authorization: Bearer $token" | "$py" -m json.tool
echo "GET /v1/metadata?key=drug_code_001 (the old API's key for a code that does not exist)"
curl -sS -w '\n  -> HTTP %{http_code}\n' "$api/v1/metadata?key=drug_code_001" -H "authorization: Bearer $token"

step "The demo trial's clinical data, entered through the API (clinflow-local seed-trial): enrolments, vital signs, labs, adverse events, medications, three weeks of ePRO diaries"
"$bin" seed-trial

monitor=$("$bin" token --role monitor --sites SITE-BOS-01,SITE-LYN-02,SITE-MUC-03 --trials CLIN-DEMO-01 --sub monitor-cra-7 | tail -n 1)
step "GET /v1/subjects/SUBJ-0101/forms/AE as a monitor: a serious adverse event (ETag is the form's version)"
curl -sS -D - "$api/v1/subjects/SUBJ-0101/forms/AE" -H "authorization: Bearer $monitor" -o /tmp/clinflow-ae.json | grep -i '^etag'
"$py" -c "import json; d=json.load(open('/tmp/clinflow-ae.json')); [print('  ', g['repeatKey'], g['items']['AETERM'], 'serious' if g['items']['AESER']=='Y' else 'not serious', g['items']['AESEV'], g['items']['AEOUT']) for g in d['itemGroups']]"
step "GET /v1/subjects/SUBJ-0101/epro?limit=5: the first diary entries"
curl -sS "$api/v1/subjects/SUBJ-0101/epro?limit=5" -H "authorization: Bearer $monitor" | \
  "$py" -c "import json,sys; d=json.load(sys.stdin); [print('  ', e['recordedAt'], 'pain', e['painScore'], e['symptoms']) for e in d['entries']]"
step "GET /v1/subjects/SUBJ-0101/audit?limit=8: who changed and who read what"
curl -sS "$api/v1/subjects/SUBJ-0101/audit?limit=8" -H "authorization: Bearer $monitor" | \
  "$py" -c "import json,sys; d=json.load(sys.stdin); [print('  ', e['at'], e['actor'], e['action'], '-', e['reason']) for e in d['entries']]"

step "GET /v1/subjects/SUBJ-0101/report as a monitor: demographics, EDC, ePRO and imaging read concurrently, the risk score and its reasons"
curl -sS "$api/v1/subjects/SUBJ-0101/report" -H "authorization: Bearer $monitor" | "$py" -c "
import json,sys
d=json.load(sys.stdin)
if 'risk' not in d: print(json.dumps(d, indent=2)); sys.exit()
r=d['risk']; g=d['demographics']
print(f\"  {d['subjectId']} ({g['subjectKey']}, {g['sex']}, {g['ageYears']} y) at {d['siteId']}: risk {r['level']} ({r['score']} points){'' if r['complete'] else ' - partial, unassessed: ' + ', '.join(r['unassessed'])}\")
for x in r['reasons']: print(f\"    +{x['points']:>3}  {x['code']}: {x['text']}\")
for s in ('edc','epro','imaging'):
    if not d[s]['available']: print(f\"  {s}: unavailable ({d[s]['reason']})\")
print('  degraded:', d['degraded'])"

step "POST /v1/subjects/SUBJ-0101/exports as the monitor, PDF and CSV: the history built off the exports queue by export-worker"
for format in pdf csv; do
  export_id=$(curl -sS -X POST "$api/v1/subjects/SUBJ-0101/exports" -H "authorization: Bearer $monitor" \
    -H 'content-type: application/json' -d "{\"format\":\"$format\"}" | json "['exportId']")
  for _ in $(seq 1 150); do
    exported=$(curl -sS "$api/v1/exports/$export_id" -H "authorization: Bearer $monitor")
    case "$(echo "$exported" | json "['status']")" in DONE|FAILED) break ;; esac
    sleep 0.2
  done
  out=${TMPDIR:-/tmp}/clinflow-SUBJ-0101.$format
  echo "$exported" | "$py" -c "
import json,sys
d=json.load(sys.stdin); p=d['progress']
print(f\"  {d['format'].upper()} {d['exportId']}: {d['status']}, {p['rowsDone']} of {p['rowsTotal']} rows, {d.get('sizeBytes', 0)} bytes{'' if d['status'] == 'DONE' else ' - ' + str(d.get('reason'))}\")"
  url=$(echo "$exported" | "$py" -c "import json,sys; print(json.load(sys.stdin).get('download', {}).get('url', ''))")
  if [ -n "$url" ]; then
    curl -sS -o "$out" "$url" && echo "  downloaded through its 10-minute link (audited): $out"
    if [ "$format" = pdf ] && command -v pdftotext >/dev/null; then
      pdftotext -layout -l 1 "$out" - | sed -n '1,14p' | sed 's/^/    /'
    elif [ "$format" = csv ]; then
      head -n 4 "$out" | cut -c1-150 | sed 's/^/    /'
    fi
  fi
done

step "The web console: open $api/ in a browser"
echo "  Sign in as Site staff at SITE-BOS-01, open subject SUBJ-0001, drop a .dcm file (or a folder)."
echo "  A DICOM file to try: $file"

step "The local stack keeps serving at $api (Ctrl-C to stop). Web console: $api/  Tokens: make token ROLE=<role> SITES=<site,site>"
tail -n +1 -f "$log" &
wait $stack
