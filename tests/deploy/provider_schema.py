"""Checks every google_* resource and data block under terraform/ against the google
provider's schema, offline: each argument and nested block must exist where it is written.

No provider binary can be downloaded here, so the schema comes from the npm package
@cdktf/provider-google 16.12.1, generated from hashicorp/google 6.50.0: for every resource and
nested block it has a JavaScript function that writes the block's HCL, listing each argument
and block by its Terraform name. This script reads those lists; arguments added after 6.50.0
are reported as unknown.

    python provider_schema.py PACKAGE_LIB_DIR TERRAFORM_DIR
"""

import os
import re
import sys

import hcl2

# Meta-arguments, and the line markers python-hcl2 adds to every block.
META = {"count", "for_each", "depends_on", "provider", "lifecycle", "provisioner", "connection",
        "__start_line__", "__end_line__"}
FUNC = re.compile(r"^function (\w+)ToHclTerraform\(struct\) \{$", re.M)
CLASS_TYPE = re.compile(r'^\w+\.tfResourceType = "(google_\w+)";$', re.M)
ENTRY = re.compile(r"^\s+(\w+): \{\s*\n\s+value: ([^\n]*),\s*\n\s+isBlock: (true|false),", re.M)
CHILD = re.compile(r"(\w+)ToHclTerraform")


def entries(text):
    """{name: child function or None} of one attrs object."""
    out = {}
    for name, value, is_block in ENTRY.findall(text):
        child = None
        if is_block == "true":
            refs = [r for r in CHILD.findall(value) if not r.startswith("cdktf")]
            child = refs[-1] if refs else None
        out[name] = child
    return out


def load_schema(lib):
    """({("resource"|"data", type): root entries}, {function: entries})."""
    roots, funcs = {}, {}
    for d in sorted(os.listdir(lib)):
        path = os.path.join(lib, d, "index.js")
        if not os.path.isfile(path):
            continue
        text = open(path, encoding="utf-8").read()
        starts = [(m.start(), m.group(1)) for m in FUNC.finditer(text)]
        cls = text.find("synthesizeHclAttributes() {")
        bounds = [s for s, _ in starts] + ([cls] if cls >= 0 else []) + [len(text)]
        for (start, name) in starts:
            end = min(b for b in bounds if b > start)
            funcs[name] = entries(text[start:end])
        m = CLASS_TYPE.search(text)
        if m and cls >= 0:
            kind = "data" if d.startswith("data-google-") else "resource"
            roots[(kind, m.group(1))] = entries(text[cls:m.start()])
    return roots, funcs


def check_body(body, schema, funcs, where, problems):
    for key, value in body.items():
        if key in META:
            continue
        if key == "dynamic":
            for dyn in value:
                for name, spec in dyn.items():
                    check_key(name, spec.get("content", [{}]), schema, funcs, where, problems)
            continue
        check_key(key, value, schema, funcs, where, problems)


def check_key(key, value, schema, funcs, where, problems):
    if key not in schema:
        problems.append(f"{where}: `{key}` is not an argument or block of the google provider 6.50.0")
        return
    child = schema[key]
    if child is None:
        return
    if child not in funcs:
        problems.append(f"{where}.{key}: no schema found for its block ({child})")
        return
    for block in value if isinstance(value, list) else [value]:
        if isinstance(block, dict):
            check_body(block, funcs[child], funcs, f"{where}.{key}", problems)


def main():
    lib, tf_dir = sys.argv[1], sys.argv[2]
    roots, funcs = load_schema(lib)
    if len(roots) < 1000:
        sys.exit(f"provider schema: only {len(roots)} resources read from {lib}; the package layout changed")
    problems, blocks = [], 0
    for dirpath, dirnames, files in os.walk(tf_dir):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        for f in sorted(files):
            if not f.endswith(".tf"):
                continue
            path = os.path.join(dirpath, f)
            with open(path, encoding="utf-8") as fh:
                doc = hcl2.load(fh)
            for kind in ("resource", "data"):
                for item in doc.get(kind, []):
                    for rtype, named in item.items():
                        if not rtype.startswith("google_"):
                            continue
                        for name, body in named.items():
                            blocks += 1
                            where = f"{os.path.relpath(path, tf_dir)}: {kind} {rtype}.{name}"
                            if (kind, rtype) not in roots:
                                problems.append(f"{where}: no such {kind} in the google provider 6.50.0")
                                continue
                            check_body(body, roots[(kind, rtype)], funcs, where, problems)
    for p in problems:
        print(p)
    print(f"provider schema: {blocks} google_* blocks checked against {len(roots)} resources and data sources; {len(problems)} problems")
    sys.exit(1 if problems or blocks == 0 else 0)


if __name__ == "__main__":
    main()
