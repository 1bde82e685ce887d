#!/usr/bin/env bash
# The man pages: sluiced(8), sluicectl(8) and sluice.conf(5) pass
# `mandoc -T lint` with no warning and render with man(1) without a
# complaint; sluice.conf(5) has an entry for every setting the parser knows
# (userspace/config.c's key tables), with the parser's range for every
# integer setting; examples/sluice-full.conf sets every one of them; and
# every configuration in the man pages' examples passes `sluiced -t`; every
# link between the README, docs/ and the alert rules' runbooks leads to a file
# and a heading that exist.
# timeout: 60
. "$(dirname "$0")/lib.sh"
for t in mandoc man python3; do
	command -v $t >/dev/null || fail "$t missing: make deps installs it"
done
[ -x "$SLUICED" ] || fail "build first: make"
MAN=$SRC/man
pages=("$MAN/sluiced.8" "$MAN/sluicectl.8" "$MAN/sluice.conf.5")

for p in "${pages[@]}"; do
	[ -s "$p" ] || fail "$p missing"
	# -W warning: warnings and errors (style notes, such as an Xr to a page
	# this host lacks, are not findings)
	mandoc -T lint -W warning "$p" >"$T/lint.log" 2>&1
	rc=$?
	grep -v 'outdated mandoc.db' "$T/lint.log" >"$T/lint2.log"
	[ $rc -eq 0 ] && [ ! -s "$T/lint2.log" ] || { cat "$T/lint.log"; fail "mandoc -T lint: $(basename "$p")"; }
	MANWIDTH=80 man --warnings -l "$p" >"$T/out.txt" 2>"$T/warn.log" || fail "man -l $(basename "$p")"
	[ ! -s "$T/warn.log" ] || { cat "$T/warn.log"; fail "man --warnings: $(basename "$p")"; }
	lines=$(wc -l <"$T/out.txt")
	say "$(basename "$p"): lint clean, renders to $lines lines"
	[ "$lines" -gt 40 ] || fail "$(basename "$p") renders to almost nothing"
done

# every setting, its range, and the full example
python3 - "$SRC/userspace/config.c" "$MAN/sluice.conf.5" "$SRC/examples/sluice-full.conf" "$SRC/userspace/config.h" <<'PY' || fail "sluice.conf(5) and the parser disagree"
import re, sys
src, page, full, hdr = (open(f).read() for f in sys.argv[1:])
defs = dict(re.findall(r'#define (CFG_\w+) (\d+)', hdr))
keys = {}   # name -> set of (lo, hi)
for m in re.finditer(r'KEY_(U32|U32_CHECK)\("(\w+)",[^,]+,[^,]+,\s*(\w+),\s*(\w+)', src):
    lo, hi = (defs.get(v, v) for v in m.group(3, 4))
    keys.setdefault(m.group(2), set()).add((lo, hi))
for m in re.finditer(r'KEY_(?:NAME|ADDR|ENUM|PERMILLE|BOOL|GROUP|CUSTOM)\("(\w+)"', src):
    keys.setdefault(m.group(1), set())
for m in re.finditer(r'\{ \.name = "(\w+)",(.*?)\}', src, re.S):
    r = re.search(r'\.min = (\d+), \.max = (\d+)', m.group(2))
    keys.setdefault(m.group(1), set())
    if r:
        keys[m.group(1)].add(r.groups())
# the text of each ".It Ic NAME" entry, up to the next .It or .El
entries = {}
lines = page.split("\n")
for i, l in enumerate(lines):
    m = re.match(r'\.It Ic (\w+)$', l)
    if not m:
        continue
    body = []
    for l2 in lines[i + 1:]:
        if l2.startswith(".It ") or l2.startswith(".El") or l2.startswith(".Bl"):
            break
        body.append(l2)
    entries.setdefault(m.group(1), []).append(" ".join(body))
bad = 0
print(f"{len(keys)} setting names in config.c, {len(entries)} entries in sluice.conf.5")
for k, ranges in sorted(keys.items()):
    if k not in entries:
        print(f"sluice.conf.5: no entry for {k}"); bad = 1; continue
    for lo, hi in ranges:
        if not any(f"{lo}..{hi}" in e for e in entries[k]):
            print(f"sluice.conf.5: {k}: range {lo}..{hi} not given"); bad = 1
    if not re.search(r'\b%s\s*=' % k, full):
        print(f"examples/sluice-full.conf: {k} not set"); bad = 1
for k in entries:
    if k not in keys and k not in ("listeners", "pools", "servers"):
        print(f"sluice.conf.5: entry {k} is no setting of the parser"); bad = 1
sys.exit(bad)
PY

# every configuration in the examples passes sluiced -t
python3 - "$T" "${pages[@]}" <<'PY' || fail "could not extract the examples"
import re, sys
out, n = sys.argv[1], 0
for page in sys.argv[2:]:
    text = open(page).read()
    for block in re.findall(r'^\.Bd -literal[^\n]*\n(.*?)^\.Ed', text, re.S | re.M):
        if "listeners = (" not in block:
            continue
        block = block.replace("\\(dq", '"').replace("\\e", "\\").replace("\\&", "")
        n += 1
        open(f"{out}/example{n}.conf", "w").write(block)
print(n)
PY
n=0
for f in "$T"/example*.conf; do
	[ -e "$f" ] || continue
	n=$((n + 1))
	"$SLUICED" -t -c "$f" >"$T/t.log" 2>&1 || { cat "$f" "$T/t.log"; fail "a configuration in the man pages does not pass sluiced -t"; }
	say "$(basename "$f"): $(cat "$T/t.log")"
done
[ $n -ge 3 ] || fail "expected at least 3 configurations in the man pages, found $n"

# links: [text](file#anchor) in README.md and docs/*.md, runbook: in alerts.yml
python3 - "$SRC" <<'PY' || fail "broken links in the documentation"
import glob, os, re, sys
root = sys.argv[1]
def slug(h):
    h = re.sub(r"[^\w\- ]", "", h.strip().lower())
    return h.replace(" ", "-")
def anchors(path):
    text = open(path).read()
    text = re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)
    return {slug(h) for h in re.findall(r"^#+ (.+)$", text, re.M)}
links = []
for md in [os.path.join(root, "README.md")] + sorted(glob.glob(os.path.join(root, "docs", "*.md"))):
    for target in re.findall(r"\]\(([^)\s]+)\)", open(md).read()):
        if "://" not in target:
            links.append((md, target))
for target in re.findall(r'runbook: "([^"]+)"', open(os.path.join(root, "examples", "alerts.yml")).read()):
    links.append((os.path.join(root, "README.md"), target))
bad = 0
for md, target in links:
    path, _, anchor = target.partition("#")
    f = os.path.normpath(os.path.join(os.path.dirname(md), path)) if path else md
    if not os.path.exists(f):
        print(f"{os.path.relpath(md, root)}: {target}: no such file"); bad = 1
    elif anchor and f.endswith(".md") and anchor not in anchors(f):
        print(f"{os.path.relpath(md, root)}: {target}: no such heading"); bad = 1
print(f"{len(links)} links checked")
sys.exit(bad)
PY
say "ok"
