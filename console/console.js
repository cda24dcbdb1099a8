//  Lakehouse console: one page, one script, only the gateway's public HTTP
//  API (docs/console.md). No framework, no build step. Each view has enter
//  and leave; the visible view refreshes itself on a timer, the others
//  cost nothing. The bearer token lives in sessionStorage (this tab only).
'use strict';

(function () {
    const TOKEN_KEY = 'lakehouse-token';
    const SERVICES_MS = 2000;           //  services view refresh
    const SAMPLES = 90;                 //  latency samples kept per service (3 min)
    const TAP_ROWS = 500;               //  tap rows shown
    const TAP_HELD = 2000;              //  tap messages held while paused
    const EVENTS_MS = 5000;             //  events view refresh
    const SVG = 'http://www.w3.org/2000/svg';
    const PALETTE = ['#2563eb', '#dc2626', '#16a34a', '#9333ea', '#ea580c', '#0891b2',
                     '#ca8a04', '#db2777', '#4b5563', '#65a30d'];

    let token = sessionStorage.getItem(TOKEN_KEY) || '';
    let current = null;                 //  the view shown

    //  ----------------------------------------------------------------
    //  Small helpers

    function $(selector, root) {
        return (root || document).querySelector(selector);
    }

    //  An element with a class and children (strings become text)
    function el(tag, className, ...children) {
        const node = document.createElement(tag);
        if (className)
            node.className = className;
        for (const child of children)
            if (child !== null && child !== undefined)
                node.append(child instanceof Node? child: String(child));
        return node;
    }

    function svg(tag, attrs) {
        const node = document.createElementNS(SVG, tag);
        for (const [name, value] of Object.entries(attrs || {}))
            node.setAttribute(name, String(value));
        return node;
    }

    function row(cells, className) {
        const tr = el('tr', className);
        for (const cell of cells)
            tr.append(cell instanceof Node? cell: el('td', null, cell === undefined || cell === null? '—': cell));
        return tr;
    }

    function fill(tbody, rows, empty, columns) {
        tbody.replaceChildren(...rows);
        if (!rows.length) {
            const td = el('td', 'muted', empty);
            td.colSpan = columns;
            tbody.append(el('tr', null, td));
        }
    }

    function micros(us) {
        if (us === undefined || us === null)
            return '—';
        if (us < 1000)
            return (Number.isInteger(us)? us: us.toFixed(1)) + ' µs';
        if (us < 1000000)
            return (us / 1000).toFixed(us < 10000? 2: 1) + ' ms';
        return (us / 1000000).toFixed(2) + ' s';
    }

    function millis(ms) {
        return ms === undefined || ms === null? '—': micros(ms * 1000);
    }

    function bytes(count) {
        if (count === undefined || count === null)
            return '—';
        const units = ['B', 'KiB', 'MiB', 'GiB'];
        let unit = 0;
        while (count >= 1024 && unit < units.length - 1) {
            count /= 1024;
            unit++;
        }
        return (unit? count.toFixed(1): count) + ' ' + units [unit];
    }

    function when(ms) {
        return ms? new Date(ms).toISOString().replace('T', ' ').replace(/\.\d+Z$/, 'Z'): '—';
    }

    function clip(text, size) {
        text = String(text);
        return text.length > size? text.slice(0, size - 1) + '…': text;
    }

    //  Show an error (or nothing) in a view's error line
    function problem(node, error) {
        if (!node)
            return;
        node.hidden = !error;
        node.textContent = !error? ''
            : error.status === 401? 'This gateway needs a bearer token: type it above (' + error.message + ')'
            : error.message || String(error);
    }

    //  ----------------------------------------------------------------
    //  The API: JSON in and out, the token as a bearer token

    class ApiError extends Error {
        constructor(status, body) {
            const error = body && body.error;
            super(error? status + ' ' + error.kind + ': ' + error.reason
                       : status + ' ' + JSON.stringify(body).slice(0, 200));
            this.status = status;
        }
    }

    async function api(method, path, body) {
        const headers = {};
        if (token)
            headers ['Authorization'] = 'Bearer ' + token;
        if (body !== undefined)
            headers ['Content-Type'] = 'application/json';
        const response = await fetch(path, {
            method, headers, cache: 'no-store',
            body: body === undefined? undefined: JSON.stringify(body)
        });
        const text = await response.text();
        let json = null;
        try {
            json = text? JSON.parse(text): null;
        }
        catch (error) {
            json = {error: {kind: 'bad_reply', reason: 'not JSON: ' + text.slice(0, 120)}};
        }
        if (!response.ok)
            throw new ApiError(response.status, json);
        return json;
    }

    //  ----------------------------------------------------------------
    //  Latency histograms, as broker.stats {latency: true} gives them:
    //  [[value_us, count], ...], cumulative since the broker started

    //  The buckets of now less those of before (the requests in between)
    function difference(now, before) {
        const old = new Map(before);
        return now.map(([value, count]) => [value, count - (old.get(value) || 0)])
                  .filter(([, count]) => count > 0);
    }

    //  A percentile of a histogram, or null when it is empty
    function percentile(buckets, fraction) {
        const total = buckets.reduce((sum, [, count]) => sum + count, 0);
        if (!total)
            return null;
        const target = Math.max(1, fraction * total);
        let seen = 0;
        for (const [value, count] of buckets) {
            seen += count;
            if (seen >= target)
                return value;
        }
        return buckets [buckets.length - 1][0];
    }

    //  ----------------------------------------------------------------
    //  Charts: small hand-made SVG

    //  Lines over time: series is [{name, points: [[t, value], ...]}]
    function lineChart(node, series, unit) {
        const width = 520, height = 200, left = 56, right = 8, top = 8, bottom = 22;
        const chart = svg('svg', {viewBox: `0 0 ${width} ${height}`, class: 'plot', role: 'img'});
        const all = series.flatMap(s => s.points).filter(p => p [1] !== null);
        if (!all.length) {
            node.replaceChildren(el('p', 'muted', 'no samples yet'));
            return;
        }
        const t0 = Math.min(...all.map(p => p [0])), t1 = Math.max(...all.map(p => p [0]), t0 + 1);
        const vmax = Math.max(...all.map(p => p [1]), 1) * 1.1;
        const x = t => left + (t - t0) / (t1 - t0) * (width - left - right);
        const y = v => top + (1 - v / vmax) * (height - top - bottom);
        for (let tick = 0; tick <= 4; tick++) {
            const value = vmax * tick / 4;
            chart.append(svg('line', {x1: left, x2: width - right, y1: y(value), y2: y(value), class: 'axis'}));
            const label = svg('text', {x: left - 4, y: y(value) + 4, class: 'tick', 'text-anchor': 'end'});
            label.textContent = unit(value);
            chart.append(label);
        }
        const span = svg('text', {x: width - right, y: height - 6, class: 'tick', 'text-anchor': 'end'});
        span.textContent = 'last ' + Math.round((t1 - t0) / 1000) + ' s';
        chart.append(span);
        const legend = el('div', 'legend');
        series.forEach((s, index) => {
            const colour = PALETTE [index % PALETTE.length];
            //  A sample without requests (null) breaks the line
            let segment = [];
            const flush = () => {
                if (segment.length === 1)
                    chart.append(svg('circle', {cx: segment [0][0], cy: segment [0][1], r: 2.5, fill: colour}));
                else
                if (segment.length)
                    chart.append(svg('polyline', {points: segment.map(p => p.join(',')).join(' '),
                                                  fill: 'none', stroke: colour, 'stroke-width': 2}));
                segment = [];
            };
            for (const [t, value] of s.points) {
                if (value === null)
                    flush();
                else
                    segment.push([x(t).toFixed(1), y(value).toFixed(1)]);
            }
            flush();
            const swatch = el('span', 'swatch');
            swatch.style.background = colour;
            legend.append(el('span', 'key', swatch, s.name));
        });
        node.replaceChildren(chart, legend);
    }

    //  Stacked horizontal bars: bars is [{name, parts: {label: count}}]
    function barChart(node, bars, labels) {
        if (!bars.length) {
            node.replaceChildren(el('p', 'muted', 'no sessions yet'));
            return;
        }
        const width = 520, bar = 22, gap = 8, left = 150, right = 40;
        const height = bars.length * (bar + gap) + gap;
        const chart = svg('svg', {viewBox: `0 0 ${width} ${height}`, class: 'plot', role: 'img'});
        const most = Math.max(...bars.map(b => Object.values(b.parts).reduce((a, c) => a + c, 0)), 1);
        bars.forEach((b, index) => {
            const top = gap + index * (bar + gap);
            const name = svg('text', {x: left - 6, y: top + bar * 0.7, class: 'tick', 'text-anchor': 'end'});
            name.textContent = clip(b.name, 24);
            chart.append(name);
            let at = left, total = 0;
            labels.forEach((label, which) => {
                const count = b.parts [label] || 0;
                if (!count)
                    return;
                const w = count / most * (width - left - right);
                const rect = svg('rect', {x: at, y: top, width: Math.max(w, 1), height: bar,
                                          fill: PALETTE [which % PALETTE.length]});
                const title = svg('title');
                title.textContent = `${b.name}: ${count} ${label}`;
                rect.append(title);
                chart.append(rect);
                at += w;
                total += count;
            });
            const sum = svg('text', {x: at + 4, y: top + bar * 0.7, class: 'tick'});
            sum.textContent = total;
            chart.append(sum);
        });
        const legend = el('div', 'legend');
        labels.forEach((label, which) => {
            const swatch = el('span', 'swatch');
            swatch.style.background = PALETTE [which % PALETTE.length];
            legend.append(el('span', 'key', swatch, label));
        });
        node.replaceChildren(chart, legend);
    }

    //  ----------------------------------------------------------------
    //  Services: broker.stats and broker.workers, every SERVICES_MS

    const services = {
        timer: null,
        samples: new Map(),             //  service -> [[t, p99_us]]
        last: null,                     //  previous stats and when, for req/s

        enter() {
            this.refresh();
            this.timer = setInterval(() => this.refresh(), SERVICES_MS);
        },
        leave() {
            clearInterval(this.timer);
        },
        async refresh() {
            const view = $('#view-services');
            try {
                const [stats, workers] = await Promise.all([
                    api('POST', '/v1/bus/broker/stats', {latency: true}),
                    api('POST', '/v1/bus/broker/workers', {})
                ]);
                problem($('.error', view), null);
                this.render(stats, workers.workers || []);
            }
            catch (error) {
                problem($('.error', view), error);
            }
        },
        render(stats, workers) {
            const now = Date.now();
            const names = Object.keys(stats.services || {}).sort();
            const rows = names.map(name => {
                const s = stats.services [name];
                const before = this.last && this.last.stats.services && this.last.stats.services [name];
                const seconds = this.last? (now - this.last.at) / 1000: 0;
                const rate = before && seconds > 0? ((s.requests - before.requests) / seconds).toFixed(1): '—';
                const errors = Object.entries(s.errors || {}).map(([st, n]) => st + '×' + n).join(' ') || '—';
                //  The p99 of the requests answered since the last sample:
                //  the difference of two cumulative histograms
                if (name !== 'broker' && Array.isArray(s.latency)) {
                    const series = this.samples.get(name) || [];
                    const p99 = before && Array.isArray(before.latency)
                              ? percentile(difference(s.latency, before.latency), 0.99): null;
                    series.push([now, p99]);
                    if (series.length > SAMPLES)
                        series.shift();
                    this.samples.set(name, series);
                }
                const answered = s.latency? s.latency.length > 0: s.p99_us > 0;
                return row([name, name === 'broker'? 'built in': s.workers, s.queued, s.requests, rate,
                            s.replies, errors, answered? micros(s.p50_us): '—', answered? micros(s.p99_us): '—',
                            s.dropped], s.workers || name === 'broker'? null: 'down');
            });
            fill($('#services-table tbody'), rows, 'no service has registered', 10);
            this.last = {stats, at: now};
            //  The busiest few services' p99 over time
            const busiest = names.filter(n => this.samples.has(n) && this.samples.get(n).some(p => p [1] !== null))
                .sort((a, b) => stats.services [b].requests - stats.services [a].requests).slice(0, 6);
            lineChart($('#latency-chart'), busiest.map(name => ({name, points: this.samples.get(name)})),
                      micros);
            //  Workers by host: a worker in the broker's own process is named
            //  SERVICE-N; one on another host has its node's certificate name
            const host = w => {
                const src = String(w.src || '');
                return src.startsWith(w.service + '-') && /^\d+$/.test(src.slice(w.service.length + 1))
                     ? "broker's host": src;
            };
            const byHost = workers.map(w => ({host: host(w), ...w}))
                .sort((a, b) => a.host.localeCompare(b.host) || a.service.localeCompare(b.service)
                                || String(a.src).localeCompare(String(b.src)));
            fill($('#workers-table tbody'),
                 byHost.map(w => row([w.host, w.service, w.src, w.credit, w.inflight, millis(w.idle_ms)])),
                 'no workers', 6);
            const dropped = Object.entries(stats.dropped || {}).filter(([, n]) => n).map(([k, n]) => k + ' ' + n);
            $('#broker-line').textContent = `broker up ${millis(stats.uptime_ms)}, bseq ${stats.bseq}, ` +
                `${stats.peers} peers` + (dropped.length? ', dropped: ' + dropped.join(', '): '');
            $('#services-updated').textContent = 'updated ' + new Date(now).toLocaleTimeString();
        }
    };

    //  ----------------------------------------------------------------
    //  Tap: GET /v1/tap/stream as Server-Sent Events, read with fetch (an
    //  EventSource cannot send the Authorization header)

    const tap = {
        abort: null,                    //  the stream's AbortController
        paused: false,
        held: [],                       //  messages that came while paused
        shown: 0,

        enter() {
            this.connect();
        },
        leave() {
            this.disconnect();
        },
        disconnect() {
            if (this.abort)
                this.abort.abort();
            this.abort = null;
        },
        status(text) {
            $('#tap-status').textContent = text;
        },
        async connect() {
            this.disconnect();
            const view = $('#view-tap');
            problem($('.error', view), null);
            const query = new URLSearchParams();
            for (const name of ['service', 'op', 'trace']) {
                const value = $('#tap-' + name).value.trim();
                if (value)
                    query.set(name, value);
            }
            const abort = new AbortController();
            this.abort = abort;
            this.status('connecting…');
            try {
                const headers = {Accept: 'text/event-stream'};
                if (token)
                    headers ['Authorization'] = 'Bearer ' + token;
                const response = await fetch('/v1/tap/stream?' + query, {headers, signal: abort.signal,
                                                                         cache: 'no-store'});
                if (!response.ok) {
                    let body = null;
                    try {
                        body = await response.json();
                    }
                    catch (error) {
                        body = null;
                    }
                    throw new ApiError(response.status, body);
                }
                await this.read(response.body.getReader(), abort);
                if (this.abort === abort)
                    this.status('the stream ended (the gateway stopped?)');
            }
            catch (error) {
                if (abort.signal.aborted)
                    return;
                problem($('.error', view), error);
                this.status('not connected');
            }
        },
        //  Split the byte stream into events: blank-line separated blocks of
        //  "field: value" lines; ':' lines are comments (keepalives)
        async read(reader, abort) {
            const decoder = new TextDecoder();
            let buffer = '';
            while (!abort.signal.aborted) {
                const {value, done} = await reader.read();
                if (done)
                    return;
                buffer += decoder.decode(value, {stream: true});
                let end;
                while ((end = buffer.indexOf('\n\n')) >= 0) {
                    const block = buffer.slice(0, end);
                    buffer = buffer.slice(end + 2);
                    let type = 'message', data = '';
                    for (const line of block.split('\n')) {
                        if (line.startsWith('event: '))
                            type = line.slice(7);
                        else
                        if (line.startsWith('data: '))
                            data += line.slice(6);
                    }
                    if (data)
                        this.event(type, JSON.parse(data));
                }
            }
        },
        event(type, data) {
            if (type === 'hello')
                this.status(`connected: ${data.service || 'every service'}, ${data.op || 'every op'}` +
                            (data.trace? ', trace ' + data.trace: '') + `; the gateway holds up to ` +
                            `${data.buffer} messages for this page`);
            else
            if (type === 'dropped')
                this.notice(`the gateway dropped ${data.dropped} messages this page did not read in time ` +
                            `(${data.total} in all)`);
            else
            if (type === 'gap')
                this.notice(`the broker's tap dropped ${data.missed || '?'} messages (bseq ${data.after} → ${data.next})`);
            else
            if (this.paused) {
                this.held.push(data);
                if (this.held.length > TAP_HELD)
                    this.held.shift();
                $('#tap-pause').textContent = `Resume (${this.held.length} held)`;
            }
            else
                this.show(data);
        },
        notice(text) {
            const td = el('td', 'notice', text);
            td.colSpan = 10;
            this.prepend(el('tr', null, td));
        },
        show(m) {
            const name = m.topic !== undefined? m.topic: m.svc + '.' + m.op;
            const tr = row([m.time? m.time.slice(11, 23): '—', m.bseq, m.kind, m.src, name,
                            m.id !== undefined? m.id: m.cid, m.tr? m.tr.slice(0, 8): '—', m.st,
                            m.bytes, m.latency_us !== undefined? micros(m.latency_us): '—'],
                           m.st >= 400? 'failed': null);
            if (m.tr)
                tr.children [6].title = m.tr;
            this.prepend(tr);
        },
        prepend(tr) {
            const tbody = $('#tap-table tbody');
            tbody.prepend(tr);
            while (tbody.children.length > TAP_ROWS)
                tbody.lastChild.remove();
        },
        togglePause() {
            this.paused = !this.paused;
            $('#tap-pause').textContent = this.paused? 'Resume (0 held)': 'Pause';
            if (!this.paused) {
                for (const data of this.held)
                    this.show(data);
                this.held = [];
            }
        }
    };

    //  ----------------------------------------------------------------
    //  Data: the catalog's datasets and a SQL box

    const data = {
        async enter() {
            const view = $('#view-data');
            try {
                const list = await api('GET', '/v1/catalog/list');
                problem($('.error', view), null);
                const rows = (list.datasets || []).map(d => {
                    const schema = (d.schema || []).map(c => c.name + ' ' + c.type).join(', ');
                    const name = el('td', null, el('a', 'link', d.name));
                    name.firstChild.href = '#data';
                    name.firstChild.addEventListener('click', event => {
                        event.preventDefault();
                        $('#sql-text').value = `SELECT * FROM "${d.name}" LIMIT 20`;
                        this.run();
                    });
                    return row([name, d.row_count, el('td', 'schema', schema || '—'),
                                el('td', 'mono', clip(d.schema_fingerprint || '', 16))]);
                });
                fill($('#datasets-table tbody'), rows, 'no dataset yet: POST /v1/ingest makes one', 4);
            }
            catch (error) {
                problem($('.error', view), error);
            }
        },
        leave() {},
        async run() {
            const sql = $('#sql-text').value.trim();
            if (!sql)
                return;
            $('#sql-status').textContent = 'running…';
            const started = performance.now();
            try {
                const result = await api('POST', '/v1/sql', {sql, limit: 1000});
                problem($('#sql-error'), null);
                const columns = result.columns || [];
                const head = el('tr');
                for (const c of columns)
                    head.append(el('th', null, c.name, el('span', 'type', c.type)));
                $('#sql-table thead').replaceChildren(head);
                fill($('#sql-table tbody'), (result.rows || []).map(r => row(r.map(v =>
                        v !== null && typeof v === 'object'? JSON.stringify(v): v))),
                     'no rows', Math.max(columns.length, 1));
                $('#sql-status').textContent = `${result.row_count} row${result.row_count === 1? '': 's'}` +
                    (result.truncated? ' (truncated)': '') + ` in ${Math.round(performance.now() - started)} ms`;
            }
            catch (error) {
                problem($('#sql-error'), error);
                $('#sql-status').textContent = '';
            }
        }
    };

    //  ----------------------------------------------------------------
    //  Vectors: indexes with their counts, and a matrix search box

    const vectors = {
        async enter() {
            const view = $('#view-vectors');
            try {
                const list = await api('GET', '/v1/vectors/index');
                problem($('.error', view), null);
                const indexes = list.indexes || [];
                fill($('#indexes-table tbody'), indexes.map(i =>
                        row([i.name, i.count, i.dim, i.metric, i.deleted, bytes(i.memory_bytes)])),
                     'no vector index yet', 6);
                if (!$('#matrix-corpora').value && indexes.length)
                    $('#matrix-corpora').value = indexes.filter(i => i.name !== 'playbook_memory')
                                                        .map(i => i.name).slice(0, 3).join(',');
            }
            catch (error) {
                problem($('.error', view), error);
            }
        },
        leave() {},
        async search() {
            const corpora = $('#matrix-corpora').value.split(',').map(c => c.trim()).filter(c => c);
            const body = {query_text: $('#matrix-query').value, corpora,
                          k: Number($('#matrix-k').value) || 5,
                          use_playbook: $('#matrix-playbook').checked};
            try {
                const result = await api('POST', '/v1/matrix/search', body);
                problem($('#matrix-error'), null);
                fill($('#matrix-table tbody'), (result.hits || []).map(h =>
                        row([h.id, h.corpus, typeof h.distance === 'number'? h.distance.toFixed(4): h.distance,
                             h.boosted? 'yes': '', el('td', 'mono', clip(JSON.stringify(h.metadata || {}), 160))])),
                     'no hits', 5);
            }
            catch (error) {
                problem($('#matrix-error'), error);
            }
        }
    };

    //  ----------------------------------------------------------------
    //  Sessions: the session log's newest iterate rows (read generically:
    //  a field a row lacks shows as a dash)

    const VERDICTS = ['accepted', 'max_iter_exhausted', 'infra_error'];

    const sessions = {
        async enter() {
            const view = $('#view-sessions');
            try {
                const result = await api('GET', '/v1/iterate/sessions?limit=200');
                problem($('.error', view), null);
                const rows = result.rows || [];
                $('#sessions-status').textContent = result.enabled === false? 'the session log is off'
                    : `${rows.length} newest rows` + (result.truncated? ' (older ones not shown)': '');
                fill($('#sessions-table tbody'), rows.map(r => {
                    const attempts = Array.isArray(r.attempts)? r.attempts.map(a => a.verdict_kind).join(' → '): '—';
                    const grounded = r.grounded_in_roster === true? 'yes': r.grounded_in_roster === false? 'no': '—';
                    return row([r.timestamp? r.timestamp.replace('T', ' ').slice(0, 19): '—', r.kind, r.model,
                                r.final_verdict, r.iterations, attempts, grounded, r.duration_ms,
                                el('td', 'mono', clip(r.session_id || '', 12))],
                               r.final_verdict === 'accepted'? null: 'failed');
                }), 'no iterate call yet: POST /v1/iterate writes one row each', 9);
                //  Verdicts per model
                const models = new Map();
                for (const r of rows) {
                    const parts = models.get(r.model || '?') || {};
                    const verdict = VERDICTS.includes(r.final_verdict)? r.final_verdict: 'other';
                    parts [verdict] = (parts [verdict] || 0) + 1;
                    models.set(r.model || '?', parts);
                }
                barChart($('#verdict-chart'), [...models].map(([name, parts]) => ({name, parts})),
                         [...VERDICTS, 'other']);
            }
            catch (error) {
                problem($('.error', view), error);
            }
        },
        leave() {}
    };

    //  ----------------------------------------------------------------
    //  Workflows: runs, and a run's nodes

    const workflows = {
        async enter() {
            const view = $('#view-workflows');
            try {
                const result = await api('GET', '/v1/workflows/runs?limit=50');
                problem($('.error', view), null);
                fill($('#runs-table tbody'), (result.runs || []).map(r => {
                    const id = el('td', 'mono', el('a', 'link', clip(r.run_id, 14)));
                    id.firstChild.href = '#workflows';
                    id.firstChild.addEventListener('click', event => {
                        event.preventDefault();
                        this.show(r.run_id);
                    });
                    return row([id, r.name, el('td', 'status ' + r.status, r.status), r.trigger,
                                when(r.started_ms), r.ended_ms? millis(r.ended_ms - r.started_ms): '—']);
                }), 'no workflow run yet', 6);
            }
            catch (error) {
                problem($('.error', view), error);
            }
        },
        leave() {},
        async show(runId) {
            const view = $('#view-workflows');
            try {
                const run = await api('GET', '/v1/workflows/runs/' + encodeURIComponent(runId));
                problem($('.error', view), null);
                $('#run-title').textContent = `Nodes of ${run.name} (${run.status})`;
                $('#run-hint').textContent = 'run ' + run.run_id + (run.trace? ', trace ' + run.trace: '');
                fill($('#nodes-table tbody'), Object.entries(run.nodes || {}).map(([name, n]) =>
                        row([name, el('td', 'status ' + n.status, n.status), n.call, n.attempts,
                             n.ended_ms && n.started_ms? millis(n.ended_ms - n.started_ms): '—',
                             n.error? clip(typeof n.error === 'string'? n.error: JSON.stringify(n.error), 120): ''])),
                     'no nodes', 6);
            }
            catch (error) {
                problem($('.error', view), error);
            }
        }
    };

    //  ----------------------------------------------------------------
    //  Events: observerd's ring, newest first

    const events = {
        timer: null,
        enter() {
            this.refresh();
            this.timer = setInterval(() => this.refresh(), EVENTS_MS);
        },
        leave() {
            clearInterval(this.timer);
        },
        async refresh() {
            const view = $('#view-events');
            const type = $('#events-type').value.trim();
            const query = new URLSearchParams({limit: '200'});
            if (type)
                query.set('type', type);
            try {
                const result = await api('GET', '/v1/observer/events?' + query);
                problem($('.error', view), null);
                const list = (result.events || []).slice().reverse();
                $('#events-status').textContent = `${list.length} events` +
                    (result.missed? `, ${result.missed} older ones no longer held`: '');
                fill($('#events-table tbody'), list.map(e =>
                        row([e.seq, e.time? e.time.replace('T', ' ').slice(0, 23): '—', e.topic, e.source,
                             el('td', 'mono', clip(JSON.stringify(e.body === undefined? null: e.body), 200))])),
                     'no events yet', 5);
            }
            catch (error) {
                problem($('.error', view), error);
            }
        }
    };

    const views = {services, tap, data, vectors, sessions, workflows, events};

    //  ----------------------------------------------------------------
    //  Navigation and the token

    function show(name) {
        if (!views [name])
            name = 'services';
        if (current === name)
            return;
        if (current)
            views [current].leave();
        current = name;
        for (const section of document.querySelectorAll('.view'))
            section.hidden = section.id !== 'view-' + name;
        for (const link of document.querySelectorAll('#tabs a'))
            link.classList.toggle('active', link.dataset.view === name);
        views [name].enter();
    }

    function authState() {
        $('#auth-state').textContent = token? 'token set for this tab': 'no token (loopback without tokens only)';
    }

    function start() {
        authState();
        $('#auth').addEventListener('submit', event => {
            event.preventDefault();
            token = $('#token').value.trim();
            $('#token').value = '';
            if (token)
                sessionStorage.setItem(TOKEN_KEY, token);
            else
                sessionStorage.removeItem(TOKEN_KEY);
            authState();
            const name = current;
            current = null;
            views [name].leave();
            show(name);
        });
        $('#tap-filters').addEventListener('submit', event => {
            event.preventDefault();
            tap.connect();
        });
        $('#tap-pause').addEventListener('click', () => tap.togglePause());
        $('#tap-clear').addEventListener('click', () => $('#tap-table tbody').replaceChildren());
        $('#sql-form').addEventListener('submit', event => {
            event.preventDefault();
            data.run();
        });
        $('#sql-text').addEventListener('keydown', event => {
            if (event.key === 'Enter' && (event.ctrlKey || event.metaKey)) {
                event.preventDefault();
                data.run();
            }
        });
        $('#matrix-form').addEventListener('submit', event => {
            event.preventDefault();
            vectors.search();
        });
        $('#events-form').addEventListener('submit', event => {
            event.preventDefault();
            events.refresh();
        });
        window.addEventListener('hashchange', () => show(location.hash.slice(1)));
        show(location.hash.slice(1));
    }

    start();
})();
