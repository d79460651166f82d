"""Checks cloudbuild.yaml offline: what Cloud Build substitutes where, and what its steps run.

    python cloudbuild.py CONFIG

Cloud Build's rules, as its documentation states them (cited in scripts/deploy-check.sh):
  - substitutions ($_X, ${_X}, built-ins such as $PROJECT_ID) are replaced in a step's name, args,
    env, dir, entrypoint and in `images`, `$$` standing for a literal `$`; with the default
    substitutionOption MUST_MATCH, a substitution the build is given but does not use, or uses
    but is not given, fails the build;
  - `script` is not substituted: a script sees a substitution only as an environment variable,
    mapped by options.automapSubstitutions (or the step's own automapSubstitutions) or by an
    `env` entry of the step; a script without a shebang runs under #!/bin/sh;
  - `script` excludes `args` and `entrypoint` in the same step;
  - a build run as a user-specified service account must log to Cloud Logging (logging
    CLOUD_LOGGING_ONLY or NONE) or to a bucket of its own (GCS_ONLY with logsBucket).

Static checks first; then every step runs here with the environment Cloud Build would give it
(its mapped substitutions, HOME), `docker` replaced by a recorder on PATH, and the recorded calls
are held to what the deployment needs: a docker-container buildx builder, the image tagged
$_REPOSITORY/sluice:$_TAG and loaded for `images:` to push, BuildKit's registry cache in
$_CACHE_REPOSITORY (mode=max), never in the release repository. A run with an empty
substitution, and one with the cache pointed at the release repository, must stop before any
build. One line per problem; exit 1 when there is any.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

import yaml

BUILTINS = {
    "PROJECT_ID", "BUILD_ID", "PROJECT_NUMBER", "LOCATION", "TRIGGER_NAME", "COMMIT_SHA",
    "REVISION_ID", "SHORT_SHA", "REPO_NAME", "REPO_FULL_NAME", "BRANCH_NAME", "TAG_NAME",
    "REF_NAME", "TRIGGER_BUILD_CONFIG_PATH", "SERVICE_ACCOUNT_EMAIL", "SERVICE_ACCOUNT",
}
# What a `gcloud builds submit` (no trigger) provides.
SUBMIT_BUILTINS = {"PROJECT_ID": "acme-shop-data", "BUILD_ID": "6f1c2a4e-0000-4000-8000-000000000001",
                   "PROJECT_NUMBER": "123456789012", "LOCATION": "global"}
VALUES = {"_REPOSITORY": "us-central1-docker.pkg.dev/acme-shop-data/sluice",
          "_CACHE_REPOSITORY": "us-central1-docker.pkg.dev/acme-shop-data/sluice-cache",
          "_TAG": "abc1234"}
SUBSTITUTED_FIELDS = ("name", "args", "env", "dir", "entrypoint")
# $$ (a literal $), ${NAME} or $NAME.
TEMPLATE_REF = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)")
# A shell parameter: $NAME, ${NAME}, ${NAME:-...}, ${#NAME}.
SHELL_REF = re.compile(r"\$\{#?([A-Za-z_][A-Za-z0-9_]*)|\$([A-Za-z_][A-Za-z0-9_]*)")
RECORDER = """#!/usr/bin/env python3
import json, os, sys
with open(os.environ["CLOUDBUILD_CHECK_LOG"], "a") as f:
    f.write(json.dumps([os.path.basename(sys.argv[0])] + sys.argv[1:]) + "\\n")
"""


def strings(value):
    if isinstance(value, str):
        yield value
    elif isinstance(value, list):
        for v in value:
            yield from strings(v)


def template_refs(text):
    return {a or b for a, b in TEMPLATE_REF.findall(text) if a or b}


def substitute(text, subs):
    """Cloud Build's substitution of one field: $$ -> $, ${X} and $X -> their values."""
    def one(m):
        if m.group(0) == "$$":
            return "$"
        name = m.group(1) or m.group(2)
        return subs.get(name, m.group(0))
    return TEMPLATE_REF.sub(one, text)


def automapped(cfg, step):
    if "automapSubstitutions" in step:
        return bool(step["automapSubstitutions"])
    return bool((cfg.get("options") or {}).get("automapSubstitutions"))


def env_names(step):
    return {e.split("=", 1)[0] for e in step.get("env", []) or []}


def static_problems(cfg):
    problems = []
    declared = set((cfg.get("substitutions") or {}).keys())
    options = cfg.get("options") or {}
    used = set()
    for i, step in enumerate(cfg.get("steps") or []):
        where = f"step {step.get('id', i)}"
        for field in SUBSTITUTED_FIELDS:
            for text in strings(step.get(field)):
                used |= template_refs(text)
        script = step.get("script")
        if script is None:
            continue
        if "args" in step or "entrypoint" in step:
            problems.append(f"{where}: `script` cannot be combined with `args` or `entrypoint`")
        mapped = env_names(step)
        auto = automapped(cfg, step)
        for a, b in SHELL_REF.findall(script):
            name = a or b
            if (name.startswith("_") or name in BUILTINS) and not auto and name not in mapped:
                problems.append(f"{where}: its script uses ${{{name}}}, which Cloud Build does not substitute in a script and nothing maps to the environment (automapSubstitutions or env: [\"{name}=${{{name}}}\"]); the script sees it empty")
    for text in strings(cfg.get("images")):
        used |= template_refs(text)
    user_used = {n for n in used if n.startswith("_")}
    for name in sorted(user_used - declared):
        problems.append(f"substitution {name} is used but not declared under substitutions (MUST_MATCH fails the build)")
    loose = options.get("substitutionOption") == "ALLOW_LOOSE"
    if not loose and not any(automapped(cfg, s) for s in cfg.get("steps") or []):
        for name in sorted(declared - user_used):
            problems.append(f"substitution {name} is declared but used in no substituted field (MUST_MATCH fails the build)")
    for name in sorted(n for n in used if not n.startswith("_") and n not in BUILTINS):
        problems.append(f"${name} in a substituted field is neither a user substitution nor a built-in; write $${name} for a literal $")
    logging = options.get("logging")
    if logging not in ("CLOUD_LOGGING_ONLY", "NONE") and not (logging == "GCS_ONLY" and cfg.get("logsBucket")):
        problems.append(f"options.logging is {logging!r}: a build run with --service-account must log to Cloud Logging (CLOUD_LOGGING_ONLY) or a bucket of its own")
    return problems


def run_build(cfg, values, work):
    """Runs every step as Cloud Build would; returns (failed step or None, docker calls, images)."""
    subs = dict(SUBMIT_BUILTINS)
    subs.update({k: str(v) for k, v in (cfg.get("substitutions") or {}).items()})
    subs.update(values)
    bindir, home, workspace = (os.path.join(work, d) for d in ("bin", "home", "workspace"))
    for d in (bindir, home, workspace):
        os.makedirs(d, exist_ok=True)
    log = os.path.join(work, "calls.jsonl")
    open(log, "w").close()
    with open(os.path.join(bindir, "docker"), "w") as f:
        f.write(RECORDER)
    os.chmod(os.path.join(bindir, "docker"), 0o755)
    failed = None
    for i, step in enumerate(cfg.get("steps") or []):
        env = {"PATH": f"{bindir}:/usr/local/bin:/usr/bin:/bin", "HOME": home, "CLOUDBUILD_CHECK_LOG": log}
        if automapped(cfg, step):
            env.update(subs)
        for entry in step.get("env", []) or []:
            k, _, v = substitute(entry, subs).partition("=")
            env[k] = v
        if "script" in step:
            script = step["script"]
            path = os.path.join(work, f"step-{i}.sh")
            with open(path, "w") as f:
                f.write(script)
            first = script.splitlines()[0] if script else ""
            shell = "bash" if first.startswith("#!") and "bash" in first else "sh"
            cmd = [shell, path]
        else:
            args = [substitute(a, subs) for a in step.get("args", [])]
            entry = step.get("entrypoint") or ("docker" if "docker" in step.get("name", "") else None)
            cmd = ([entry] if entry else []) + args
        r = subprocess.run(cmd, cwd=workspace, env=env, capture_output=True, text=True, timeout=60)
        if r.returncode != 0:
            failed = (step.get("id", i), r.returncode, (r.stdout + r.stderr).strip())
            break
    calls = [json.loads(line) for line in open(log)]
    images = [substitute(t, subs) for t in strings(cfg.get("images"))]
    return failed, calls, images


def flag_values(args, flag):
    out = []
    for i, a in enumerate(args):
        if a == flag and i + 1 < len(args):
            out.append(args[i + 1])
        elif a.startswith(flag + "="):
            out.append(a[len(flag) + 1:])
    return out


def build_problems(failed, calls, images, values):
    if failed:
        sid, rc, out = failed
        return [f"step {sid} exited {rc} with the substitutions set: {out[-300:]}"]
    problems = []
    repo, cache_repo, tag = values["_REPOSITORY"], values["_CACHE_REPOSITORY"], values["_TAG"]
    image = f"{repo}/sluice:{tag}"
    if images != [image]:
        problems.append(f"images is {images}; Cloud Build should push exactly {image}")
    docker = [c[1:] for c in calls if c[0] == "docker"]
    creates = [i for i, a in enumerate(docker) if a[:2] == ["buildx", "create"]]
    builds = [i for i, a in enumerate(docker) if a[:2] == ["buildx", "build"] or a[:1] == ["build"]]
    if len(builds) != 1:
        return problems + [f"expected one image build, docker was called {docker}"]
    b = docker[builds[0]]
    buildx = b[:2] == ["buildx", "build"]
    if not buildx:
        problems.append("the image is built with `docker build`; BuildKit's registry cache needs `docker buildx build`")
    if not any(c < builds[0] and "docker-container" in docker[c] + flag_values(docker[c], "--driver") for c in creates):
        problems.append("no `docker buildx create --driver docker-container` before the build: the default docker driver cannot export a registry cache")
    if flag_values(b, "--tag") + flag_values(b, "-t") != [image]:
        problems.append(f"the build tags {flag_values(b, '--tag') + flag_values(b, '-t')}, not {image}")
    if buildx and "--load" not in b:
        problems.append("the build does not --load its image into the daemon, so `images:` has nothing to push")
    cache_ref = f"type=registry,ref={cache_repo}/sluice:buildcache"
    froms, tos = flag_values(b, "--cache-from"), flag_values(b, "--cache-to")
    if cache_ref not in froms:
        problems.append(f"--cache-from is {froms}; it should read {cache_ref}")
    if not any(t.startswith(cache_ref + ",") and "mode=max" in t.split(",") for t in tos):
        problems.append(f"--cache-to is {tos}; it should write {cache_ref} with mode=max (the builder stage's dependency layer)")
    for ref in froms + tos:
        if f"ref={repo}/" in ref:
            problems.append(f"cache {ref} is in the release repository, whose immutable tags refuse a rewritten cache tag")
    if not b or b[-1] != ".":
        problems.append(f"the build context is {b[-1:]}, not the uploaded source (.)")
    return problems


def guard_problems(cfg, work):
    problems = []
    for what, values in (("an empty _REPOSITORY", dict(VALUES, _REPOSITORY="")),
                         ("the cache in the release repository", dict(VALUES, _CACHE_REPOSITORY=VALUES["_REPOSITORY"]))):
        failed, calls, _ = run_build(cfg, values, os.path.join(work, "guard"))
        built = [c for c in calls if c[0] == "docker" and "build" in c[1:3]]
        if not failed or built:
            problems.append(f"with {what} the build still ran ({'no step failed' if not failed else 'docker build was called'}); the check step must stop it")
    return problems


def main():
    path = sys.argv[1]
    cfg = yaml.safe_load(open(path, encoding="utf-8"))
    problems = static_problems(cfg)
    if not problems:
        work = tempfile.mkdtemp(prefix="cloudbuild-check-")
        try:
            failed, calls, images = run_build(cfg, VALUES, os.path.join(work, "build"))
            problems += build_problems(failed, calls, images, VALUES)
            if not problems:
                for c in calls:
                    print("  recorded: " + " ".join(c))
            problems += guard_problems(cfg, work)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    for p in problems:
        print(p)
    steps = len(cfg.get("steps") or [])
    print(f"cloudbuild: {steps} steps of {os.path.basename(path)}; {len(problems)} problems")
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
