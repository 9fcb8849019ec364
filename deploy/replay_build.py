#!/usr/bin/env python3
"""Replays the Dockerfile's build stages on this machine, without Docker.

There is no Docker engine in CI, and a linter cannot see that a build
stage's commands fail on the tree. This script takes the build context as
`docker build .` would (the files git knows, minus .dockerignore), then,
stage by stage:

- checks that every COPY source exists (in the context, or in the stage it
  is copied from);
- runs the build stages' (those on a `rust:` image) COPY and RUN steps for
  real, in a directory that stands for the image's filesystem: installing
  the pinned cargo-chef, preparing the recipe, cooking the dependency
  layer from it, copying the tree and building and stripping the binary.
  The image's `target/` is the repository's own, so dependencies the
  tests already compiled are not compiled twice;
- checks only the COPY sources of the runtime stage (its steps need the
  base image).

`--plant-bench` adds a bench to the copied tree's manifest first, as a
developer would, and stops at the crate's own build: it shows that the
dependency layer does not depend on the list of targets.

Exit status 0 when every step that can run here succeeded.
"""

import argparse
import fnmatch
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile


def fail(msg):
    print(f"replay: FAILED: {msg}", file=sys.stderr)
    sys.exit(1)


def dockerignore(root):
    path = os.path.join(root, ".dockerignore")
    if not os.path.exists(path):
        return []
    rules = []
    for line in open(path):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        pattern = line[1:] if negate else line
        rules.append((negate, pattern.strip("/")))
    return rules


def ignored(rel, rules):
    """Docker's rule: a pattern matches the path or any of its parent
    directories; the last matching rule wins."""
    parts = rel.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    result = False
    for negate, pattern in rules:
        if any(fnmatch.fnmatchcase(p, pattern) for p in prefixes):
            result = not negate
    return result


def build_context(repo, dest, plant_bench):
    files = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=repo, check=True, capture_output=True,
    ).stdout.decode().split("\0")
    rules = dockerignore(repo)
    for rel in filter(None, files):
        src = os.path.join(repo, rel)
        if not os.path.isfile(src) or ignored(rel, rules):
            continue
        os.makedirs(os.path.dirname(os.path.join(dest, rel)), exist_ok=True)
        shutil.copy2(src, os.path.join(dest, rel))
    if plant_bench:
        with open(os.path.join(dest, "Cargo.toml"), "a") as f:
            f.write('\n[[bench]]\nname = "planted"\nharness = false\n')
        os.makedirs(os.path.join(dest, "benches"), exist_ok=True)
        with open(os.path.join(dest, "benches", "planted.rs"), "w") as f:
            f.write("fn main() {}\n")
        print("replay: planted benches/planted.rs and its [[bench]] in the copy")


def instructions(dockerfile):
    """(line number, keyword, arguments) of each instruction, continuation
    lines joined, comments dropped."""
    out, buf, start = [], "", None
    for n, line in enumerate(open(dockerfile), 1):
        stripped = line.strip()
        if not buf and (not stripped or stripped.startswith("#")):
            continue
        if buf and stripped.startswith("#"):
            continue
        if start is None:
            start = n
        if stripped.endswith("\\"):
            buf += stripped[:-1] + " "
            continue
        buf += stripped
        keyword, _, args = buf.partition(" ")
        out.append((start, keyword.upper(), args.strip()))
        buf, start = "", None
    return out


class Stage:
    def __init__(self, name, base, root, replayed):
        self.name = name
        self.base = base
        self.root = root
        self.cwd = "/"
        self.replayed = replayed
        self.stopped = None  # why the replay stopped, if it did

    def host(self, path):
        path = path if path.startswith("/") else os.path.join(self.cwd, path)
        return os.path.join(self.root, os.path.normpath(path).lstrip("/"))


def copy_into(sources, dest_dir_or_file, many):
    if many or dest_dir_or_file.endswith("/"):
        os.makedirs(dest_dir_or_file, exist_ok=True)
    for src in sources:
        if os.path.isdir(src):
            shutil.copytree(src, dest_dir_or_file, dirs_exist_ok=True)
        elif many or os.path.isdir(dest_dir_or_file) or dest_dir_or_file.endswith("/"):
            shutil.copy2(src, os.path.join(dest_dir_or_file, os.path.basename(src)))
        else:
            os.makedirs(os.path.dirname(dest_dir_or_file), exist_ok=True)
            shutil.copy2(src, dest_dir_or_file)


def sh(cmd, cwd, env):
    print(f"replay:   $ {cmd}")
    r = subprocess.run(["bash", "-c", cmd], cwd=cwd, env=env)
    return r.returncode == 0


def run_step(stage, line, command, env, target, through_dependencies):
    """Runs one RUN instruction's commands (split on &&); returns False
    when one failed."""
    cwd = stage.host(stage.cwd)
    os.makedirs(cwd, exist_ok=True)
    # The image's target/ (relative to the work dir, as in the image) is
    # the repository's, so compiled dependencies are shared.
    link = os.path.join(cwd, "target")
    if not os.path.lexists(link):
        os.symlink(target, link)
    for part in [p.strip() for p in command.split("&&")]:
        words = shlex.split(part)
        if words[:3] == ["cargo", "install", "cargo-chef"]:
            version = words[words.index("--version") + 1] if "--version" in words else None
            have = subprocess.run(["cargo", "chef", "--version"], capture_output=True, text=True)
            if have.returncode == 0 and version and version in have.stdout:
                print(f"replay:   cargo-chef {version} is installed here")
                continue
        if words[:2] == ["cargo", "build"] and through_dependencies:
            stage.stopped = f"Dockerfile:{line}: `{part}` builds the crate itself"
            print(f"replay:   stage {stage.name} stops here: {stage.stopped}")
            return True
        if not sh(part, cwd, env):
            return False
    return True


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--plant-bench", action="store_true")
    args = parser.parse_args()
    repo = subprocess.run(
        ["git", "rev-parse", "--show-toplevel"], check=True, capture_output=True, text=True
    ).stdout.strip()
    work = tempfile.mkdtemp(prefix="boxoffice-replay-")
    try:
        context = os.path.join(work, "context")
        os.makedirs(context)
        build_context(repo, context, args.plant_bench)
        dockerfile = os.path.join(context, "Dockerfile")
        if not os.path.exists(dockerfile):
            fail("the Dockerfile is not in the build context")
        env = dict(os.environ, CARGO_TERM_COLOR="never")
        env.pop("CARGO_TARGET_DIR", None)
        target = os.environ.get("CARGO_TARGET_DIR") or os.path.join(repo, "target")
        os.makedirs(target, exist_ok=True)
        stages, current = {}, None
        for line, keyword, rest in instructions(dockerfile):
            if keyword == "FROM":
                m = re.match(r"(\S+)(?:\s+AS\s+(\S+))?$", rest, re.IGNORECASE)
                image, name = m.group(1), m.group(2) or f"stage{len(stages)}"
                root = os.path.join(work, "stages", name)
                if image in stages:
                    parent = stages[image]
                    shutil.copytree(parent.root, root, symlinks=True)
                    current = Stage(name, parent.base, root, parent.replayed)
                    current.cwd = parent.cwd
                else:
                    os.makedirs(root)
                    current = Stage(name, image, root, image.startswith("rust:"))
                stages[name] = current
                how = "replayed" if current.replayed else "COPY sources checked only"
                print(f"replay: stage {name} (FROM {image}): {how}")
                continue
            if current is None:
                continue
            if keyword == "WORKDIR":
                current.cwd = os.path.normpath(os.path.join(current.cwd, rest))
                os.makedirs(current.host(current.cwd), exist_ok=True)
            elif keyword == "COPY":
                words = shlex.split(rest)
                source_stage = None
                while words and words[0].startswith("--"):
                    flag = words.pop(0)
                    if flag.startswith("--from="):
                        source_stage = stages.get(flag.split("=", 1)[1])
                        if source_stage is None:
                            fail(f"Dockerfile:{line}: COPY {flag}: no such stage")
                *sources, dest = words
                if source_stage is not None:
                    if source_stage.stopped:
                        print(f"replay: Dockerfile:{line}: COPY --from={source_stage.name} {' '.join(sources)}: "
                              f"made after the replay stopped, not checked")
                        continue
                    paths = [source_stage.host(s) for s in sources]
                    missing = [s for s, p in zip(sources, paths) if not os.path.exists(p)]
                else:
                    paths = [os.path.normpath(os.path.join(context, s)) for s in sources]
                    missing = [s for s, p in zip(sources, paths) if not os.path.exists(p)]
                if missing:
                    fail(f"Dockerfile:{line}: COPY source {', '.join(missing)} is not in the build context"
                         + ("" if source_stage is None else f" of stage {source_stage.name}"))
                print(f"replay: Dockerfile:{line}: COPY {' '.join(sources)}: sources present")
                if current.replayed and not current.stopped:
                    copy_into(paths, current.host(dest) + ("/" if dest.endswith("/") else ""), len(paths) > 1)
            elif keyword == "RUN":
                if not current.replayed or current.stopped:
                    continue
                print(f"replay: Dockerfile:{line}: RUN")
                if not run_step(current, line, rest, env, target, args.plant_bench):
                    fail(f"Dockerfile:{line}: a command of this RUN failed (stage {current.name})")
        if args.plant_bench:
            print("replay: with a planted bench, the build stages replay through the dependency layer")
        else:
            print("replay: the build stages replay in full")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
