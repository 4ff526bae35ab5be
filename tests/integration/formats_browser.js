// formats_browser.js -- opens pysample's outputs in headless Chromium (playwright-core, the
// Debian chromium binary) and prints what the page shows, one "key<TAB>value" line each.
//
//   node formats_browser.js svg FILE.svg SHOT.png FRAME_REGEX
//       screenshot; hover the widest frame matching FRAME_REGEX (details line); click it
//       (zoom: its width after); search FRAME_REGEX through the Search button (matched text)
//   node formats_browser.js speedscope FILE SPEEDSCOPE_RELEASE_DIR
//       serves speedscope's static app and FILE from 127.0.0.1, loads FILE by #profileURL,
//       switches to the Sandwich view and prints its rows (name, total, self)
//
// Needs NODE_PATH pointing at a node_modules with playwright-core, and CHROMIUM (default
// /usr/bin/chromium). Every step is bounded by a timeout; the browser is closed on any exit.
'use strict';
const fs = require('fs');
const http = require('http');
const os = require('os');
const path = require('path');
const { chromium } = require('playwright-core');

const ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'];

function out(k, v) { process.stdout.write(k + '\t' + String(v).replace(/[\t\n]/g, ' ') + '\n'); }

async function launch() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pysample-chromium-'));
  const ctx = await chromium.launchPersistentContext(dir, {
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium', args: ARGS, headless: true,
    viewport: { width: 1280, height: 900 }, timeout: 60000,
  });
  return { ctx, dir };
}

async function svg(file, shot, pattern) {
  const { ctx, dir } = await launch();
  try {
    const page = ctx.pages()[0] || await ctx.newPage();
    const errors = [];
    page.on('pageerror', (e) => errors.push(e.message));
    page.on('request', (r) => { if (!r.url().startsWith('file:')) errors.push('request ' + r.url()); });
    await page.goto('file://' + path.resolve(file), { timeout: 60000 });
    await page.waitForSelector('g.f', { timeout: 30000, state: 'attached' });
    // The visible title, and the full command in its tooltip.
    out('title', await page.evaluate(() => [].slice.call(document.getElementById('title').childNodes)
      .filter((n) => n.nodeType === 3).map((n) => n.textContent).join('')));
    out('title_full', await page.evaluate(() => { const t = document.querySelector('#title > title'); return t ? t.textContent : ''; }));
    out('title_width', await page.evaluate(() => Math.round(document.getElementById('title').getBBox().width)));
    out('subtitle', await page.textContent('#sub'));
    out('frames', await page.locator('g.f').count());
    // The whole graph: the viewport takes the SVG's own size (at most 2000 px high).
    const size = await page.evaluate(() => [+document.documentElement.getAttribute('width'),
      +document.documentElement.getAttribute('height')]);
    await page.setViewportSize({ width: Math.min(size[0] || 1200, 2000), height: Math.min(size[1] || 900, 2000) });
    await page.screenshot({ path: shot, timeout: 60000 });
    out('screenshot', shot);
    // The widest frame whose label matches.
    const idx = await page.evaluate((pat) => {
      const re = new RegExp(pat); let best = -1, bw = -1;
      document.querySelectorAll('g.f').forEach((g, i) => {
        const name = g.querySelector('title').textContent.split('\n')[0];
        const w = +g.getAttribute('data-w');
        if (re.test(name) && w > bw) { best = i; bw = w; }
      });
      return best;
    }, pattern);
    out('match_index', idx);
    if (idx >= 0) {
      const g = page.locator('g.f').nth(idx);
      await g.locator('rect').hover({ timeout: 10000, force: true });
      out('details', await page.textContent('#details'));
      out('width_before', await g.locator('rect').getAttribute('width'));
      await g.locator('rect').click({ timeout: 10000, force: true });
      out('width_after', await g.locator('rect').getAttribute('width'));
      out('reset_visible', await page.locator('#reset').evaluate((e) => !e.classList.contains('hide')));
      await page.click('#reset', { timeout: 10000, force: true });
      out('width_reset', await g.locator('rect').getAttribute('width'));
    }
    page.once('dialog', (d) => d.accept(pattern));
    await page.click('#search', { timeout: 10000, force: true });
    await page.waitForFunction(() => document.getElementById('matched').textContent.trim() !== '',
      null, { timeout: 10000 });
    out('matched', await page.textContent('#matched'));
    out('highlighted', await page.locator('g.f.hit').count());
    out('errors', errors.length ? errors.join('; ') : 'none');
  } finally {
    await ctx.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

function serve(root, profile) {
  return new Promise((resolve) => {
    const types = { '.html': 'text/html', '.js': 'text/javascript', '.css': 'text/css',
      '.json': 'application/json', '.wasm': 'application/wasm', '.png': 'image/png' };
    const srv = http.createServer((req, res) => {
      const u = decodeURIComponent(new URL(req.url, 'http://x').pathname);
      const f = u === '/profile' ? profile : path.join(root, path.normalize(u).replace(/^([/\\])+/, ''));
      if (u !== '/profile' && !f.startsWith(root)) { res.writeHead(403); res.end(); return; }
      fs.readFile(f, (err, data) => {
        if (err) { res.writeHead(404); res.end(); return; }
        res.writeHead(200, { 'Content-Type': types[path.extname(f)] || 'application/octet-stream' });
        res.end(data);
      });
    });
    srv.listen(0, '127.0.0.1', () => resolve(srv));
  });
}

async function speedscope(file, release) {
  const srv = await serve(path.resolve(release), path.resolve(file));
  const port = srv.address().port;
  const { ctx, dir } = await launch();
  try {
    const page = ctx.pages()[0] || await ctx.newPage();
    const errors = [];
    page.on('pageerror', (e) => errors.push(e.message));
    page.on('request', (r) => { if (!r.url().startsWith('http://127.0.0.1:' + port)) errors.push('request ' + r.url()); });
    const base = 'http://127.0.0.1:' + port;
    await page.goto(base + '/index.html#profileURL=' + encodeURIComponent(base + '/profile'), { timeout: 60000 });
    await page.getByText(/Sandwich/).first().click({ timeout: 30000 });
    await page.waitForSelector('table tr td', { timeout: 30000 });
    out('page_title', await page.title());
    out('profile_name', await page.evaluate(() => document.body.innerText.split('\n').filter(
      (l) => /thread|process|all threads/.test(l))[0] || ''));
    // Rows of the Sandwich table: total, self, name, and the file speedscope shows as title.
    const rows = await page.evaluate(() => [].slice.call(document.querySelectorAll('table tr')).map(
      (tr) => [].slice.call(tr.querySelectorAll('td')).map((td) => td.textContent.trim())
        .concat(tr.querySelector('td[title]') ? [tr.querySelector('td[title]').getAttribute('title')] : []))
      .filter((r) => r.length >= 3));
    for (const r of rows) out('row', r.join(' | '));
    out('errors', errors.length ? errors.join('; ') : 'none');
  } finally {
    await ctx.close();
    srv.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

const [mode, ...rest] = process.argv.slice(2);
const run = mode === 'svg' ? svg(rest[0], rest[1], rest[2] || '.')
  : mode === 'speedscope' ? speedscope(rest[0], rest[1]) : Promise.reject(new Error('usage: formats_browser.js svg|speedscope ...'));
const timer = setTimeout(() => { console.error('formats_browser.js: timed out'); process.exit(3); }, 170000);
run.then(() => { clearTimeout(timer); }, (e) => { console.error('formats_browser.js: ' + e.message); process.exit(2); });
