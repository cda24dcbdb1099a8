"""lhdocs - run the copyable commands of the docs against a live system.

The convention is written for doc authors in docs/testing.md ("Docs
examples"); in short:

- A fenced block is a command block when its info string is sh, bash, shell
  or console, or when it has none and its first line that is not a comment
  starts like a command (`$ `, `./build/`, `buscall `, `curl `, ...). A
  block fenced `text` (or json, c, sql, ...) is never run.
- An HTML comment right before a block changes that:
    <!-- example: not-run (REASON) -->  listed with its reason, not run
    <!-- example: output -->            the expected output of the command
                                        that ends the previous command block
    <!-- example: up -->                the block is `./build/lakehouse up
                                        ARGS`: the page's system gets ARGS
- <!-- example: setup, a fenced block, then --> on its own line: a hidden
  block, run where it stands (a page's state a reader need not see);
  `<!-- example: setup before-up` runs before the page's `lakehouse up`.
- Each page runs in order on its own fresh system: one `lakehouse up` on
  ephemeral ports in a temporary directory, the default CURVE and all, and
  every process a block started in the background is killed at the page's
  end. The documented default addresses (127.0.0.1:3110 / localhost:3110,
  5570, 5571, Ollama's 11434) are rewritten to the page's ports; `GW` is the
  gateway's URL; `LAKEHOUSE_CONFIG` names the page's config.
- A command fails its block when it exits non-zero, or (curl) gets an HTTP
  status >= 400, unless the doc says it should: a comment on it or right
  after it naming the status (`# 404 ...`, `#  422 {...}`) or an
  `echo $?`. A comment that shows output (`# {...}`, `# 201 {...}`,
  `#  -> {...}`) must match: the status, and every "key": it names must be
  in what the command printed. `$ CMD` transcripts and output blocks are
  compared whole (whitespace ignored, `...` matches anything).
"""

import glob
import os
import re
import signal
import subprocess
import time

import lhtest

SHELL_INFOS = ("sh", "bash", "shell", "console")
COMMAND_START = re.compile(
    r"^(\$ |\./build/|build/|buscall |bustap\b|busreplay |lakehouse |curl |"
    r"gen_workers |loadmix |make\b|scripts/|tests/run\b|kill |printf |"
    r"[A-Z_]+=|install |systemctl |sqlite3 |python3 |/usr/bin/python3 |"
    r"cd |export |echo |jq |duckdb )")
MARKER = re.compile(r"^\s*<!--\s*example:\s*(not-run|output|up|setup)\b\s*(.*?)\s*(-->)?\s*$")
FENCE = re.compile(r"^(\s*)```+\s*([^\s`]*)")
#  default ports in the docs -> the page's own (filled per page): after a
#  colon (127.0.0.1:3110, localhost:3110, tcp://127.0.0.1:5570) or --port
PORTS = (("3110", "gw"), ("5570", "bus"), ("5571", "tap"), ("11434", "ollama"))
OUTPUT_COMMENT = re.compile(r"^\s*#\s*(->\s*)?(\d{3}\b\s*)?[\[{]")
STATUS_COMMENT = re.compile(r"#[^\n]*?\b[45]\d\d\b")
EXIT_COMMENT = re.compile(r"#[^\n]*?\bexits? [1-9]\d*\b")
#  never run unmarked: they change the machine or run the suite itself
UNSAFE = re.compile(r"(^|[\s;&|(])(sudo|apt|apt-get|systemctl|scripts/install-deps|make|tests/run|rm\s+-rf\s+/)(\s|$)")
PAGE_TIMEOUT = 150          # seconds for one page, whatever happens
BLOCK_TIMEOUT = 30          # seconds for one block


class Block:
    """One fenced block of a page."""

    def __init__(self, path, line, info, lines, marker, arg, hidden, before_up=False):
        self.path = path            # page, relative to the repository
        self.line = line            # 1-based line of the opening fence
        self.info = info            # the fence's info string
        self.lines = lines          # the text, without the fences
        self.marker = marker        # None, not-run, output, up, setup
        self.arg = arg              # the marker's reason / up arguments
        self.hidden = hidden        # inside <!-- example: setup ... -->
        self.before_up = before_up  # <!-- example: setup before-up: run before `up`
        self.kind = self._kind()    # run, transcript, not-run, output, up, text

    def _kind(self):
        if self.marker in ("not-run", "output", "up"):
            return self.marker
        first = next((l for l in self.lines if l.strip() and not l.lstrip().startswith("#")), "")
        command = self.info in SHELL_INFOS or self.hidden \
            or (self.info == "" and COMMAND_START.match(first.strip()))
        if not command:
            return "text"
        if any(l.startswith("$ ") for l in self.lines):
            return "transcript"
        return "run"

    def where(self):
        return "%s:%d" % (self.path, self.line)


def parse_page(root, path):
    """The fenced blocks of one page, with their markers."""
    text = open(os.path.join(root, path), encoding="utf-8").read().split("\n")
    blocks = []
    marker, arg, hidden, before_up = None, "", False, False
    i = 0
    while i < len(text):
        line = text[i]
        m = MARKER.match(line)
        if m:
            marker, arg = m.group(1), m.group(2)
            if marker == "up" and arg:
                #  <!-- example: up ARGS -->: the page's up arguments, no block
                blocks.append(Block(path, i + 1, "", ["lakehouse up " + arg], "up", "", False))
                marker, arg = None, ""
                i += 1
                continue
            if marker == "not-run":
                arg = arg.strip("() ")
            if marker == "setup":
                hidden = not m.group(3)
                before_up = hidden and arg == "before-up"
                marker = None
            i += 1
            continue
        if hidden and line.strip() == "-->":
            hidden, before_up = False, False
            i += 1
            continue
        f = FENCE.match(line)
        if f:
            start, body = i, []
            i += 1
            while i < len(text) and not re.match(r"^\s*```+\s*$", text[i]):
                body.append(text[i][len(f.group(1)):] if text[i].startswith(f.group(1)) else text[i])
                i += 1
            blocks.append(Block(path, start + 1, f.group(2), body, marker, arg, hidden,
                                hidden and before_up))
            marker, arg = None, ""
            i += 1
            continue
        if line.strip():
            marker, arg = None, ""      # a marker applies to the next block only
        i += 1
    return blocks


def pages(root):
    """README.md, docs/tutorial.md, then every other docs/*.md by name."""
    found = ["README.md"]
    if os.path.exists(os.path.join(root, "docs", "tutorial.md")):
        found.append("docs/tutorial.md")
    for path in sorted(glob.glob(os.path.join(root, "docs", "*.md"))):
        rel = os.path.relpath(path, root)
        if rel not in found:
            found.append(rel)
    return found


def rewrite(text, ports):
    """The docs' default ports replaced by the page's own."""
    for port, which in PORTS:
        text = re.sub(r"(?<=:)%s\b|(?<=--port )%s\b" % (port, port), str(ports[which]), text)
    return text


def command_extents(lines):
    """[(first, last)] 0-based line ranges of the commands of a block:
    continuation lines (a trailing backslash, an open quote) belong to the
    command they continue; comments and blank lines to none."""
    extents = []
    i = 0
    while i < len(lines):
        s = lines[i].strip()
        if not s or s.startswith("#"):
            i += 1
            continue
        first = i
        quote = None
        while True:
            line = lines[i]
            j = 0
            while j < len(line):
                c = line[j]
                if quote is None and c == "#" and (j == 0 or line[j - 1] in " \t"):
                    break
                if quote is None and c == "\\":
                    j += 2
                    continue
                if c in "'\"" and (quote is None or quote == c):
                    quote = None if quote else c
                elif quote == '"' and c == "\\":
                    j += 1
                j += 1
            if (quote or line.rstrip().endswith("\\")) and i + 1 < len(lines):
                i += 1
                continue
            heredoc = re.search(r"<<-?\s*['\"]?(\w+)['\"]?", line) if quote is None else None
            if heredoc:                 # the here-document's lines are its input
                while i + 1 < len(lines) and lines[i + 1].strip() != heredoc.group(1):
                    i += 1
                i = min(i + 1, len(lines) - 1)
            break
        extents.append((first, i))
        i += 1
    return extents


def fuzzy_match(expected, actual):
    """Whole-output comparison: whitespace ignored, ... and … match anything."""
    exp = re.sub(r"\s+", "", expected)
    act = re.sub(r"\s+", "", actual)
    parts = re.split(r"\.\.\.|…", exp)
    pattern = ".*".join(re.escape(p) for p in parts)
    return re.fullmatch(pattern, act, re.S) is not None


class Page:
    """One page run on its own fresh system."""

    def __init__(self, t, root, path, log):
        self.t = t
        self.root = root
        self.path = path
        self.log = log              # print function
        self.blocks = parse_page(root, path)
        self.failures = []          # "FILE:LINE: what"
        self.ran = 0                # command blocks run
        self.compared = 0           # outputs compared (blocks, comments, transcripts)
        self.commands = 0           # commands run
        self.not_run = []           # (where, reason)
        self.groups = []            # process groups of the blocks

    def runnable(self):
        return [b for b in self.blocks if b.kind in ("run", "transcript", "output")]

    def run(self):
        for b in self.blocks:
            if b.kind == "not-run":
                self.not_run.append((b.where(), b.arg or "no reason given"))
                if not b.arg:
                    self.fail(b, "a not-run block must give its reason")
        if not [b for b in self.blocks if b.kind in ("run", "transcript")]:
            return
        deadline = time.monotonic() + PAGE_TIMEOUT
        self.dir = os.path.join(self.t.tmp, re.sub(r"\W", "_", self.path))
        self.work = os.path.join(self.dir, "work")
        os.makedirs(self.work)
        for name in ("build", "tests", "scripts"):
            target = self.t.build if name == "build" else os.path.join(self.root, name)
            os.symlink(target, os.path.join(self.work, name))
        #  HOME is the page's directory; ~/lakehouse, the checkout, is its work dir
        os.symlink(self.work, os.path.join(self.dir, "lakehouse"))
        self.ports = {k: lhtest.free_port() for k in ("gw", "bus", "tap", "ollama")}
        self.config = os.path.join(self.dir, "lakehouse.cfg")
        with open(self.config, "w") as f:
            f.write(lhtest.zpl({
                "bus/endpoint": "tcp://127.0.0.1:%d" % self.ports["bus"],
                "bus/tap": "tcp://127.0.0.1:%d" % self.ports["tap"],
                "gateway/listen": "127.0.0.1:%d" % self.ports["gw"],
                "chatd/ollama_url": "http://127.0.0.1:%d" % self.ports["ollama"],
                "embedd/ollama_url": "http://127.0.0.1:%d" % self.ports["ollama"],
            }))
        self.env = dict(os.environ)
        self.env.update({
            "LAKEHOUSE_CONFIG": self.config,
            "PATH": self.t.build + ":" + os.environ.get("PATH", "/usr/bin:/bin"),
            "GW": "http://127.0.0.1:%d" % self.ports["gw"],
            "HOME": self.dir,
            "LAKEHOUSE_HOME": os.path.join(self.dir, "home"),
            "LH_DOCS_PAGE": self.dir,       # marks every process the page starts
        })
        for name in ("LAKEHOUSE_TOKEN", "LAKEHOUSE_TOKENS", "XDG_CONFIG_HOME"):
            self.env.pop(name, None)
        self.envfile = os.path.join(self.dir, "env.sh")
        open(self.envfile, "w").close()
        up = [b for b in self.blocks if b.kind == "up"]
        args = []
        if up:
            words = " ".join(l.rstrip("\\ ") for l in up[0].lines if not l.lstrip().startswith("#")).split()
            args = words[words.index("up") + 1:] if "up" in words else []
        for b in self.blocks:
            if b.before_up and b.kind == "run":
                self.run_block(b)
        proc = lhtest.Proc([self.t.lakehouse, "up"] + args, "up-" + os.path.basename(self.dir),
                           self.dir, self.env, cwd=self.work)
        self.t.procs.append(proc)
        try:
            proc.wait_line(lhtest.READY_UP, 30)
        except lhtest.Failure as e:
            self.failures.append("%s: lakehouse up %s did not start: %s\n%s"
                                 % (self.path, " ".join(args), e, proc.tail()))
            proc.kill9()
            return
        previous = None
        try:
            for b in self.blocks:
                if time.monotonic() > deadline:
                    self.fail(b, "the page's %d s budget ran out before this block" % PAGE_TIMEOUT)
                    break
                if b.kind == "run" and not b.before_up:
                    self.run_block(b)
                    previous = b
                elif b.kind == "transcript":
                    self.run_transcript(b)
                    previous = b
                elif b.kind == "output":
                    self.compared += 1
                    if previous is None or getattr(previous, "last_output", None) is None:
                        self.fail(b, "an output block with no command block before it")
                        continue
                    expected = rewrite("\n".join(b.lines), self.ports)
                    if not fuzzy_match(expected, previous.last_output):
                        self.fail(b, "output differs from what %s printed:\n--- doc\n%s\n--- got\n%s"
                                  % (previous.where(), expected, previous.last_output))
        finally:
            for pgid in self.groups:
                try:
                    os.killpg(pgid, signal.SIGKILL)
                except OSError:
                    pass
            proc.term()
            if proc in self.t.procs:
                self.t.procs.remove(proc)
            self.kill_strays()

    def kill_strays(self):
        """Kill what the page started and that left its process group
        (setsid, a daemon): every process whose environment carries this
        page's LH_DOCS_PAGE."""
        mark = ("LH_DOCS_PAGE=%s" % self.dir).encode()
        for entry in os.listdir("/proc"):
            if not entry.isdigit() or int(entry) == os.getpid():
                continue
            try:
                with open("/proc/%s/environ" % entry, "rb") as f:
                    if mark in f.read().split(b"\0"):
                        os.kill(int(entry), signal.SIGKILL)
            except OSError:
                pass

    def fail(self, b, what):
        self.failures.append("%s: %s" % (b.where(), what))

    def _script(self, lines):
        """A bash script running lines with our markers; the offset of the
        first doc line in it."""
        prologue = [
            'cd "%s"' % self.work,
            '. "%s"' % self.envfile,
            "trap 'echo \"__LH_ERR $? $LINENO\"' ERR",
            "trap 'echo \"__LH_CMD $LINENO\"' DEBUG",
            'curl () { command curl -w "%{stderr}__LH_HTTP %{http_code} ${BASH_LINENO[0]}\\n" "$@"; }',
        ]
        names = set()
        for l in lines:
            m = re.match(r"^\s*(?:export\s+)?([A-Za-z_]\w*)=", l)
            if m:
                names.add(m.group(1))
        epilogue = ["trap - DEBUG ERR"]
        for n in sorted(names):
            epilogue.append('declare -p %s >> "%s" 2>/dev/null' % (n, self.envfile))
        body = prologue + lines + ["", ":"] + epilogue
        return "\n".join(body) + "\n", len(prologue)

    def _exec(self, b, lines, combined=False):
        """Run lines as one bash script; (output, [(line, kind, value)],
        {line: [stdout lines]}) with line 0-based in lines, kind err/http.
        combined: stderr goes with stdout, as a terminal shows them."""
        script, offset = self._script(lines)
        path = os.path.join(self.dir, "block-%d.sh" % b.line)
        with open(path, "w") as f:
            f.write(script)
        out_path = path + ".out"
        err_path = path + ".err"
        with open(out_path, "wb") as out, open(err_path, "wb") as err:
            p = subprocess.Popen(["bash", "--noprofile", "--norc", path], stdin=subprocess.DEVNULL,
                                 stdout=out, stderr=subprocess.STDOUT if combined else err,
                                 env=self.env, cwd=self.work, start_new_session=True)
            self.groups.append(p.pid)
            try:
                p.wait(BLOCK_TIMEOUT)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
                self.fail(b, "did not finish within %d s" % BLOCK_TIMEOUT)
        raw = open(out_path, "rb").read().decode("utf-8", "replace")
        raw_err = open(err_path, "rb").read().decode("utf-8", "replace")
        events, plain = [], []
        current = None
        outputs = {}                # command line -> its stdout lines
        for stream, text in (("out", raw), ("err", raw_err)):
            for line in text.split("\n"):
                m = re.match(r"^(.*?)__LH_(CMD|ERR|HTTP) (\S+)(?: (\S+))?$", line)
                rest = m.group(1) if m else line
                if rest or not m:
                    plain.append(rest)
                    if stream == "out" and current is not None:
                        outputs.setdefault(current, []).append(rest)
                if not m:
                    continue
                kind = m.group(2).lower()
                if kind == "cmd":
                    n = int(m.group(3)) - offset - 1
                    if 0 <= n < len(lines):
                        current = n
                else:
                    n = int(m.group(4)) - offset - 1
                    events.append((n, kind, int(m.group(3))))
            current = None
        return "\n".join(plain).strip("\n"), events, outputs

    def unsafe(self, b):
        """Fail a block that would change the machine unless marked."""
        for l in b.lines:
            body = l[2:] if l.startswith("$ ") else l
            if not body.lstrip().startswith("#") and UNSAFE.search(body.split(" #")[0]):
                self.fail(b, "`%s` is not run by the docs test: mark the block "
                          "<!-- example: not-run (REASON) -->" % body.strip()[:120])
                return True
        return False

    def run_block(self, b):
        self.ran += 1
        if self.unsafe(b):
            return
        lines = [rewrite(l, self.ports) for l in b.lines]
        output, events, outputs = self._exec(b, lines)
        extents = command_extents(lines)
        self.commands += len(extents)
        b.last_output = ""
        if extents:
            last = extents[-1]
            b.last_output = "\n".join(sum((outputs.get(n, []) for n in range(last[0], last[1] + 1)), []))
        problems = []
        codes = {}
        for n, kind, value in events:
            ext = next(((a, z) for a, z in extents if a <= n <= z), None)
            if ext is None:
                ext = (n, n)
            codes.setdefault(ext, []).append((kind, value))
        for ext in extents:
            a, z = ext
            after = z + 1
            while after < len(lines) and lines[after].lstrip().startswith("#"):
                after += 1
            context = "\n".join(lines[a:after])
            text = "\n".join(l for l in lines[a:z + 1])
            comments = lines[z + 1:after]
            expects_error = bool(STATUS_COMMENT.search(context)) or \
                (after < len(lines) and "$?" in lines[after])
            expects_exit = expects_error or bool(EXIT_COMMENT.search(context))
            got = codes.get(ext, [])
            http = [v for k, v in got if k == "http"]
            errs = [v for k, v in got if k == "err"]
            mine = "\n".join(sum((outputs.get(n, []) for n in range(a, z + 1)), []))
            shown_out = mine if mine.strip() else output
            if not expects_error and any(v >= 400 for v in http):
                problems.append("line %d: HTTP %s from `%s`\n%s"
                                % (b.line + 1 + a, http, text.strip()[:200], shown_out[-1500:]))
            elif not expects_exit:
                if any(v == 0 for v in http):
                    problems.append("line %d: HTTP %s from `%s`\n%s"
                                    % (b.line + 1 + a, http, text.strip()[:200], shown_out[-1500:]))
                elif errs:
                    problems.append("line %d: exit %s from `%s`\n%s"
                                    % (b.line + 1 + a, errs, text.strip()[:200], shown_out[-1500:]))
            shown = [c for c in comments if OUTPUT_COMMENT.match(c)]
            if shown:
                self.compared += 1
                start = comments.index(shown[0])
                doc = "\n".join(re.sub(r"^\s*#\s?", "", c) for c in comments[start:])
                m = re.match(r"^\s*(->\s*)?(\d{3})\b", doc)
                if m and http and int(m.group(2)) != http[-1]:
                    problems.append("line %d: the doc shows status %s, got %d"
                                    % (b.line + 1 + a, m.group(2), http[-1]))
                for key in sorted(set(re.findall(r'"([A-Za-z_][\w.$-]*)"\s*:', doc))):
                    if not re.search(r'"%s"\s*:' % re.escape(key), shown_out):
                        problems.append("line %d: the doc shows key \"%s\", the output has none:\n%s"
                                        % (b.line + 1 + a, key, shown_out[-1500:]))
                        break
        for p in problems:
            self.fail(b, p)
        if problems and os.environ.get("LH_DOCS_VERBOSE"):
            self.log(output)

    def run_transcript(self, b):
        """`$ CMD` lines, each followed by the output the doc shows for it;
        run in one shell (so `echo $?` sees the command before), stdout and
        stderr together as a terminal shows them."""
        self.ran += 1
        if self.unsafe(b):
            return
        cmds = []
        for l in b.lines:
            if l.startswith("$ "):
                cmds.append([rewrite(l[2:], self.ports), []])
            elif cmds:
                cmds[-1][1].append(rewrite(l, self.ports))
        self.commands += len(cmds)
        self.compared += len(cmds)
        output, events, outputs = self._exec(b, [c for c, _ in cmds], combined=True)
        for n, (cmd, expected) in enumerate(cmds):
            got = "\n".join(outputs.get(n, [])).strip("\n")
            b.last_output = got
            exp = "\n".join(expected)
            if not fuzzy_match(exp, got):
                self.fail(b, "`$ %s` printed something else:\n--- doc\n%s\n--- got\n%s"
                          % (cmd, exp, got))


def main_for(t, chosen, log=print):
    """Run the pages chosen (paths relative to the repository); fail the test
    with every failing block's FILE:LINE."""
    root = os.environ.get("LH_ROOT") or os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
    failures = []
    totals = [0, 0, 0, 0]
    missing = [path for path in chosen if not os.path.isfile(os.path.join(root, path))]
    if missing:
        raise lhtest.Failure("no such page: %s (LH_DOCS names pages by their path in the "
                             "repository, e.g. docs/workflows.md)" % ", ".join(missing))
    for path in chosen:
        page = Page(t, root, path, log)
        start = time.monotonic()
        page.run()
        totals[0] += page.ran
        totals[1] += len(page.not_run)
        totals[2] += page.compared
        totals[3] += page.commands
        log("# %-24s %3d blocks (%3d commands) run, %2d outputs compared, %2d not-run, %d failed (%.1f s)"
            % (path, page.ran, page.commands, page.compared, len(page.not_run), len(page.failures),
               time.monotonic() - start))
        for where, reason in page.not_run:
            log("#     not-run %s: %s" % (where, reason))
        for f in page.failures:
            log("not ok - " + f)
        failures += page.failures
        if not page.failures:
            t.check(True, "%s: %d blocks run" % (path, page.ran))
    log("# total: %d blocks (%d commands) run, %d outputs compared, %d blocks marked not-run, %d failed"
        % (totals[0], totals[3], totals[2], totals[1], len(failures)))
    if failures:
        raise lhtest.Failure("%d doc block(s) failed:\n%s" % (len(failures), "\n".join(failures)))
