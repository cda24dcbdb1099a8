//  console_test.js - the web console in headless Chromium against a live
//  system (tests/integration/test_console.py starts it and runs this)
//
//  node tests/console/console_test.js GATEWAY_URL TOKEN [SCREENSHOT_DIR]
//
//  Environment: LH_PLAYWRIGHT, the playwright-core module's directory
//  (scripts/playwright-install prints it); LH_CHROMIUM, the browser
//  (/usr/bin/chromium). Every view is opened and must show its data with
//  no console error; the services table must update after requests; a SQL
//  query typed into the box must show its rows; the tap view must show a
//  request made while it is open. Prints "ok N - what" per check and
//  exits 0, or prints "not ok" with the reason and exits 1.
'use strict';

const fs = require('fs');
const os = require('os');
const path = require('path');
const http = require('http');
const crypto = require('crypto');

const [url, token, shots] = process.argv.slice(2);
const { chromium } = require(process.env.LH_PLAYWRIGHT || 'playwright-core');
const executablePath = process.env.LH_CHROMIUM || '/usr/bin/chromium';
//  Without the background-networking flags Chromium reaches for the
//  network at start, which a closed machine refuses
const ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
              '--disable-background-networking', '--disable-component-update', '--disable-sync',
              '--disable-dev-shm-usage'];

let checks = 0;
function ok(what) {
    checks++;
    console.log(`ok ${checks} - ${what}`);
}

//  One HTTP request to the gateway from here (not the browser)
function request(method, route, body, headers) {
    return new Promise((resolve, reject) => {
        const target = new URL(route, url);
        const data = body === undefined? null: Buffer.from(JSON.stringify(body));
        const req = http.request(target, {method, headers: Object.assign({
            'Authorization': 'Bearer ' + token,
            'Content-Type': 'application/json',
            'Content-Length': data? data.length: 0
        }, headers || {})}, response => {
            const chunks = [];
            response.on('data', chunk => chunks.push(chunk));
            response.on('end', () => resolve({status: response.statusCode,
                                              body: Buffer.concat(chunks).toString()}));
        });
        req.on('error', reject);
        req.end(data);
    });
}

async function main() {
    const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'lh-console-chromium-'));
    const context = await chromium.launchPersistentContext(profile, {
        executablePath, headless: true, args: ARGS, viewport: {width: 1280, height: 820}
    });
    const errors = [];
    try {
        const page = context.pages() [0] || await context.newPage();
        page.on('console', message => {
            if (message.type() === 'error')
                errors.push(message.text());
        });
        page.on('pageerror', error => errors.push(String(error)));
        const noErrors = what => {
            if (errors.length)
                throw new Error(`${what}: console errors: ${errors.join(' | ')}`);
        };
        const shot = async name => {
            if (shots)
                await page.screenshot({path: path.join(shots, name + '.png')});
        };

        //  The page loads; without a token it asks for one (the gateway's
        //  401s are the only console errors allowed, and only here); then
        //  it takes the token
        await page.goto(url + '/console#services');
        await page.waitForFunction(() => document.querySelector('#view-services .error').textContent
                                         .includes('needs a bearer token'), null, {timeout: 10000});
        await page.fill('#token', token);
        await page.click('#auth button');
        await page.waitForFunction(() => document.querySelector('#auth-state').textContent.includes('token set'));
        await page.waitForFunction(() => [...document.querySelectorAll('#services-table tbody tr')]
            .some(tr => tr.children [0].textContent === 'echo'), null, {timeout: 10000});
        const before401 = errors.splice(0);
        if (!before401.every(e => e.includes('401')))
            throw new Error('console errors before the token: ' + before401.join(' | '));
        ok('the console loads, asks for a token (401), and takes it');

        //  Services: echo is listed; its requests count grows after requests
        const echoRequests = () => page.evaluate(() => {
            for (const tr of document.querySelectorAll('#services-table tbody tr'))
                if (tr.children [0].textContent === 'echo')
                    return Number(tr.children [3].textContent);
            return -1;
        });
        const before = await echoRequests();
        for (let index = 0; index < 25; index++) {
            const reply = await request('POST', '/v1/bus/echo/echo', {n: index});
            if (reply.status !== 200)
                throw new Error('echo answered ' + reply.status + ': ' + reply.body);
        }
        await page.waitForFunction(b => [...document.querySelectorAll('#services-table tbody tr')]
            .some(tr => tr.children [0].textContent === 'echo' && Number(tr.children [3].textContent) >= b + 25),
            before, {timeout: 10000});
        ok(`the services table updates without a reload: echo requests ${before} -> ${await echoRequests()}`);
        //  The interval that had those requests has a p99 point
        await page.waitForFunction(() => document.querySelector('#latency-chart polyline, #latency-chart circle'),
                                   null, {timeout: 10000});
        await page.waitForFunction(() => document.querySelectorAll('#workers-table tbody tr').length > 1);
        noErrors('services');
        await shot('services');
        ok('the services view shows the latency chart and the workers, no console error');

        //  Data: the dataset and its schema; a typed query shows its rows
        await page.click('#tabs a[data-view=data]');
        await page.waitForFunction(() => document.querySelector('#datasets-table tbody').textContent.includes('crew'),
                                   null, {timeout: 10000});
        await page.fill('#sql-text', "SELECT name, city FROM crew WHERE city = 'Toledo' ORDER BY name");
        await page.click('#sql-run');
        await page.waitForFunction(() => document.querySelectorAll('#sql-table tbody tr').length === 2
            && document.querySelector('#sql-table tbody').textContent.includes('Ann Lee'), null, {timeout: 10000});
        const cells = await page.$$eval('#sql-table tbody tr', rows => rows.map(r => r.children [0].textContent));
        if (cells.join(',') !== 'Ann Lee,Bo Diaz')
            throw new Error('SQL rows: ' + cells.join(','));
        noErrors('data');
        await shot('data');
        ok('a SQL query typed into the box shows its rows (Ann Lee, Bo Diaz)');

        //  Vectors: the index and its count; a matrix search answers
        await page.click('#tabs a[data-view=vectors]');
        await page.waitForFunction(() => [...document.querySelectorAll('#indexes-table tbody tr')]
            .some(tr => tr.children [0].textContent === 'crewvec' && tr.children [1].textContent === '3'),
            null, {timeout: 10000});
        await page.fill('#matrix-query', 'forklift driver');
        await page.fill('#matrix-corpora', 'crewvec');
        await page.click('#matrix-form button');
        await page.waitForFunction(() => document.querySelectorAll('#matrix-table tbody tr td').length > 1
            && !document.querySelector('#matrix-table tbody').textContent.includes('no hits'), null, {timeout: 10000});
        noErrors('vectors');
        await shot('vectors');
        ok('the vectors view lists the index with its count; a matrix search shows hits');

        //  Sessions: the rows the iterate calls wrote, and the chart
        await page.click('#tabs a[data-view=sessions]');
        await page.waitForFunction(() => document.querySelectorAll('#sessions-table tbody tr').length >= 2
            && document.querySelector('#verdict-chart rect'), null, {timeout: 10000});
        noErrors('sessions');
        await shot('sessions');
        ok('the sessions view shows the iterate rows and verdicts per model');

        //  Workflows: the run, and its nodes when chosen
        await page.click('#tabs a[data-view=workflows]');
        await page.waitForFunction(() => document.querySelector('#runs-table tbody a'), null, {timeout: 10000});
        await page.click('#runs-table tbody a');
        await page.waitForFunction(() => document.querySelector('#nodes-table tbody').textContent.includes('succeeded'),
                                   null, {timeout: 10000});
        noErrors('workflows');
        await shot('workflows');
        ok('the workflows view shows the run and its node states');

        //  Events: observerd's events
        await page.click('#tabs a[data-view=events]');
        await page.waitForFunction(() => document.querySelector('#events-table tbody').textContent.includes('catalog.changed'),
                                   null, {timeout: 10000});
        noErrors('events');
        await shot('events');
        ok('the events view shows observerd\'s events');

        //  Tap: a request made while the view is open shows up
        await page.click('#tabs a[data-view=tap]');
        await page.waitForFunction(() => document.querySelector('#tap-status').textContent.startsWith('connected'),
                                   null, {timeout: 10000});
        const trace = crypto.randomBytes(16).toString('hex');
        let seen = false;
        for (let attempt = 0; attempt < 20 && !seen; attempt++) {
            const reply = await request('POST', '/v1/bus/echo/echo', {tap: attempt}, {'X-Lakehouse-Trace-Id': trace});
            if (reply.status !== 200)
                throw new Error('echo answered ' + reply.status);
            seen = await page.waitForFunction(t => document.querySelector(`#tap-table td[title="${t}"]`), trace,
                                              {timeout: 500}).then(() => true, () => false);
        }
        if (!seen)
            throw new Error('the tap view did not show trace ' + trace);
        //  Pause holds what comes, resume shows it
        await page.click('#tap-pause');
        await request('POST', '/v1/bus/echo/echo', {paused: true});
        await page.waitForFunction(() => /held\)/.test(document.querySelector('#tap-pause').textContent)
            && !/\(0 held\)/.test(document.querySelector('#tap-pause').textContent), null, {timeout: 10000});
        await page.click('#tap-pause');
        noErrors('tap');
        await shot('tap');
        ok('the tap view shows a request made while it is open (trace ' + trace.slice(0, 8) + '), pauses and resumes');

        //  Back to services: still no error anywhere
        const updated = await page.textContent('#services-updated');
        await page.click('#tabs a[data-view=services]');
        await page.waitForFunction(u => document.querySelector('#services-updated').textContent !== u,
                                   updated, {timeout: 10000});
        noErrors('the end');
        ok('no console error in any view');
    }
    finally {
        await context.close();
        fs.rmSync(profile, {recursive: true, force: true});
    }
}

main().then(() => {
    console.log(`${checks} checks passed`);
    process.exit(0);
}, error => {
    console.log(`not ok ${checks + 1} - ${error.message || error}`);
    process.exit(1);
});
