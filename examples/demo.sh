#!/usr/bin/env bash
# The whole story on one machine, no registry, no internet:
# generate a key, build examples/hello under policies/baseline.yaml into an OCI layout (the gate
# runs first; the build signs and attests provenance + SBOM), then verify the signature and both
# attestations the way a deploy pipeline would, and print what was proven.
set -euo pipefail
cd "$(dirname "$0")/.."
TB=.venv/bin/trustbuild
out=${DEMO_OUT:-.demo}
rm -rf "$out"; mkdir -p "$out"
step() { printf '\n== %s\n' "$*" >&2; }

export TRUSTBUILD_PASSWORD=${TRUSTBUILD_PASSWORD:-demo-password}

step "trustbuild generate-key-pair --output-key-prefix $out/cosign"
$TB generate-key-pair --output-key-prefix "$out/cosign"

step "the build context: examples/hello plus Debian's busybox-static binary"
cp -r examples/hello "$out/context"
cp /bin/busybox "$out/context/busybox"
cat "$out/context/Dockerfile"

step "trustbuild build --policy policies/baseline.yaml --sign-key ... --oci-layout-path $out/layout"
digest=$($TB build --context "$out/context" --no-push --destination localhost/hello:1 \
  --oci-layout-path "$out/layout" --policy policies/baseline.yaml \
  --sign-key "$out/cosign.key" --reproducible)
echo "built $digest"

step "trustbuild inspect oci:$out/layout:1"
$TB inspect --no-tags "oci:$out/layout:1" | .venv/bin/python -c '
import json, sys
d = json.load(sys.stdin)
c = d["config"]["config"]
print("digest  ", d["digest"]); print("platform", d["platform"])
print("layers  ", len(d["layers"])); print("user    ", c.get("User")); print("cmd     ", c.get("Cmd"))'

if command -v skopeo >/dev/null; then
  step "skopeo reads the same manifest digest from the layout"
  seen="sha256:$(skopeo inspect --raw "oci:$out/layout:1" | sha256sum | cut -d' ' -f1)"
  echo "skopeo: $seen"
  [ "$seen" = "$digest" ] || { echo "demo: digest mismatch" >&2; exit 1; }
fi

step "trustbuild verify oci:$out/layout:1 --key $out/cosign.pub --docker-reference localhost/hello"
$TB verify "oci:$out/layout:1" --key "$out/cosign.pub" --docker-reference localhost/hello

step "trustbuild verify-attestation ... --type slsaprovenance"
$TB verify-attestation "oci:$out/layout:1" --key "$out/cosign.pub" --type slsaprovenance \
  --output json > "$out/provenance.json"
step "trustbuild verify-attestation ... --type spdxjson"
$TB verify-attestation "oci:$out/layout:1" --key "$out/cosign.pub" --type spdxjson \
  --output json > "$out/sbom.json"

if command -v umoci >/dev/null && [ "$(id -u)" = 0 ]; then
  step "umoci unpacks the image; it runs"
  umoci unpack --image "$out/layout:1" "$out/bundle" >/dev/null
  chroot --userspec=1000:1000 "$out/bundle/rootfs" /usr/local/bin/hello
fi

step "what was proven"
.venv/bin/python - "$out" "$digest" <<'EOF'
import json, sys
out, digest = sys.argv[1], sys.argv[2]
prov = json.load(open(f"{out}/provenance.json"))
stmt = [a["statement"] for a in prov["attestations"] if a["verified"]][0]
pred = stmt["predicate"]
ext, internal = pred["buildDefinition"]["externalParameters"], pred["buildDefinition"]["internalParameters"]
policy = internal.get("policy", {})
print(f"image        {digest}")
print(f"signed       by {out}/cosign.pub (cosign simple signing, verified)")
print(f"provenance   SLSA v1, builder {pred['runDetails']['builder']['id']}, subject "
      f"sha256:{stmt['subject'][0]['digest']['sha256']}")
print(f"  dockerfile sha256:{ext['dockerfile']['digest']['sha256']}")
print(f"  context    sha256:{ext['context']['digest']['sha256']}")
print(f"  sandbox    {internal['securityProfile']} profile, seccomp "
      f"sha256:{internal['seccompProfile']['digest']['sha256'][:16]}...")
print(f"  policy     {policy.get('decision')} (policy sha256:{policy.get('digest', {}).get('sha256', '')[:16]}...)")
sbom = json.load(open(f"{out}/sbom.json"))
doc = [a["statement"] for a in sbom["attestations"] if a["verified"]][0]["predicate"]
print(f"sbom         SPDX {doc.get('spdxVersion')}, {len(doc.get('packages', []))} package entries, verified")
EOF
