#include "page_template.hpp"

namespace tapegrad::viz {

// Self-contained on purpose: no URL of any kind (not even a comment with two slashes), so the
// page opens from file:// with the network off, and the tests can grep it for none.
std::string_view page_template() {
  static constexpr std::string_view text = R"PAGE(<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>@TITLE@</title>
<style>
body { font: 14px/1.4 Helvetica, Arial, sans-serif; margin: 12px 16px; color: #212529; }
h1 { font-size: 20px; margin: 0 0 4px; }
.note { margin: 2px 0 6px; max-width: 70em; }
nav a { margin-right: 1em; }
#controls { display: flex; flex-wrap: wrap; gap: 6px; align-items: center; margin: 6px 0; }
#controls button { font-size: 14px; padding: 3px 10px; }
#slider { width: 280px; }
#stepinfo { font-weight: bold; min-width: 9em; }
#main { display: flex; gap: 14px; align-items: flex-start; }
#graph { flex: 1 1 60%; overflow: auto; max-height: 82vh; border: 1px solid #dee2e6; }
#panel { flex: 0 0 460px; max-width: 460px; }
#panel h2 { font-size: 16px; margin: 4px 0; }
#panel h3 { font-size: 14px; margin: 10px 0 4px; }
#panel table { border-collapse: collapse; width: 100%; }
#panel td, #panel th { border: 1px solid #dee2e6; padding: 2px 5px; vertical-align: top;
  font-size: 13px; text-align: left; }
code, .num { font-family: Menlo, Consolas, monospace; font-size: 12px; }
.sum { color: #b02a37; font-weight: bold; }
#node-list { background: #f8f9fa; border: 1px solid #dee2e6; padding: 6px; font-size: 12px;
  overflow: auto; }
#legend span { display: inline-block; padding: 1px 8px; margin-right: 6px; border: 1px solid #888; }
svg.layered text { font: 11px Helvetica, Arial, sans-serif; text-anchor: middle; }
svg.layered g.node > rect, svg.layered g.node > ellipse { stroke: #333; stroke-width: 1px; }
svg.layered g.param > rect { fill: #cfe2ff; }
svg.layered g.const > rect { fill: #e9ecef; }
svg.layered g.op > ellipse { fill: #fff3cd; }
svg.layered g.back > ellipse { fill: #e2d9f3; }
svg.layered g.node > ellipse + ellipse { fill: none; }
svg.layered .edge path { fill: none; stroke: #555; }
g.node { cursor: pointer; }
text.gline { fill: #b02a37; font-weight: bold; }
#graph g.node.done { opacity: 0.55; }
#graph g.node.recv > rect, #graph g.node.recv > ellipse, #graph g.node.recv > polygon { stroke: #fd7e14; stroke-width: 3px; }
#graph g.node.cur > rect, #graph g.node.cur > ellipse, #graph g.node.cur > polygon { stroke: #d63384; stroke-width: 5px; }
#graph g.edge.flow path { stroke: #fd7e14; stroke-width: 3px; }
#graph g.edge.flow polygon { fill: #fd7e14; stroke: #fd7e14; }
</style>
</head>
<body>
<h1>@TITLE@</h1>
<p class="note">@NOTE@</p>
<nav>@LINKS@</nav>
<div id="controls">
<button id="first" title="first step (Home)">|&#x25C0; first</button>
<button id="prev" title="one step back (left arrow)">&#x25C0; back</button>
<button id="play" title="play or pause (space)">&#x25B6; play</button>
<button id="next" title="one step on (right arrow)">next &#x25B6;</button>
<button id="last" title="last step (End)">last &#x25B6;|</button>
<input type="range" id="slider" min="0" max="0" value="0">
<span id="stepinfo"></span>
<button id="toggle-list">node list</button>
<span id="layout-info"></span>
</div>
<div id="main">
<div id="graph">@SVG@</div>
<div id="panel">
<div id="step-panel"></div>
<h3>leaf gradients so far</h3>
<table id="leaf-grads"></table>
<div id="inspect"><p>Click a node to see all of its values.</p></div>
</div>
</div>
<pre id="node-list" hidden></pre>
<p id="legend"><span style="background:#cfe2ff">parameter</span><span style="background:#e9ecef">constant</span><span style="background:#fff3cd">op</span><span style="background:#e2d9f3">op recorded by a backward (create_graph)</span><span style="border:3px solid #d63384">current node</span><span style="border:3px solid #fd7e14">receives a gradient now</span></p>
<div id="state" data-step="0" data-steps="0" data-current=""></div>
<script type="application/json" id="tapegrad-data">@DATA@</script>
<script>
(function () {
  'use strict';
  const D = JSON.parse(document.getElementById('tapegrad-data').textContent);
  const N = D.steps.length;
  const box = {};
  D.boxes.forEach(function (b) { box[b.id] = b; });
  const $ = function (id) { return document.getElementById(id); };
  const num = function (x) { return typeof x === 'string' ? Number(x) : x; };
  function fmtNum(x) {
    x = num(x);
    if (!isFinite(x)) return String(x);
    return String(Number(x.toPrecision(6)));
  }
  function list(v) { return '[' + v.map(fmtNum).join(', ') + ']'; }
  function brief(v) {
    if (!v) return '(none yet)';
    if (v.length <= 6) return list(v);
    let total = 0, lo = Infinity, hi = -Infinity;
    v.forEach(function (x) { total += x; lo = Math.min(lo, x); hi = Math.max(hi, x); });
    return 'mean ' + Number((total / v.length).toPrecision(4)) + ' min ' +
      Number(lo.toPrecision(4)) + ' max ' + Number(hi.toPrecision(4));
  }
  function tensorText(t) {
    if (!t) return '(none)';
    const v = t.v.map(num);
    if (t.n <= 6) return list(v);
    return t.summary + ' <details><summary>' + t.n + ' values' +
      (t.v.length < t.n ? ', first ' + t.v.length + ' shown' : '') + '</summary><span class="num">' +
      list(v) + '</span></details>';
  }
  function esc(s) {
    return String(s).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
  }
  function shapeText(t) { return t ? '[' + t.shape.join(', ') + ']' : ''; }
  function nameOf(id) {
    const b = box[id];
    return b.op ? b.title + ' (' + b.op + ')' : b.title + (b.kind === 'const' ? ' (constant)' : '');
  }

  const svg = document.querySelector('#graph svg');
  const el = {}, gline = {};
  document.querySelectorAll('#graph g.node').forEach(function (g) {
    const id = g.id.slice(2);
    el[id] = g;
    const texts = g.querySelectorAll('text');
    if (texts.length) {
      gline[id] = texts[texts.length - 1];
      gline[id].classList.add('gline');
    }
  });
  if (D.layout === 'layered' && svg) svg.classList.add('layered');
  $('layout-info').textContent = 'layout: ' + D.layout + (D.layoutNote ? ' (' + D.layoutNote + ')' : '');
  const visitedAt = {};
  D.steps.forEach(function (s, k) { visitedAt[s.node] = k + 1; });
  const leaves = D.boxes.filter(function (b) { return b.kind === 'param'; });

  let step = 0, acc = {}, contrib = {}, dirty = new Set(), marked = [], timer = null;
  function reset() {
    acc = {};
    contrib = {};
    const seed = D.seed.v.map(num);
    acc[D.output] = seed.slice();
    contrib[D.output] = [{ step: 0, from: null, v: seed }];
    D.boxes.forEach(function (b) { dirty.add(b.id); });
  }
  function apply(k) {
    const s = D.steps[k - 1];
    s.sent.forEach(function (e) {
      if (!e.grad || !e.to) return;
      const v = e.grad.v.map(num);
      const a = acc[e.to];
      if (a) {
        for (let i = 0; i < a.length; i++) a[i] += v[i];
      } else {
        acc[e.to] = v.slice();
      }
      (contrib[e.to] = contrib[e.to] || []).push({ step: k, from: s.node, v: v });
      dirty.add(e.to);
    });
  }
  function go(k) {
    k = Math.max(0, Math.min(N, k));
    if (k === step + 1) {
      apply(k);
    } else if (k !== step) {
      reset();
      for (let j = 1; j <= k; j++) apply(j);
    }
    const full = Math.abs(k - step) > 1 || k < step;
    step = k;
    render(full);
  }

  function contributionsText(id) {
    const c = contrib[id] || [];
    if (c.length === 0) return '(none yet)';
    const parts = c.map(function (x) {
      return brief(x.v) + (x.from ? ' <small>from ' + esc(nameOf(x.from)) + '</small>' : ' <small>seed</small>');
    });
    if (c.length === 1) return parts[0];
    return parts.join(' + ') + ' = <span class="sum">' + brief(acc[id]) + '</span>';
  }

  function renderPanel() {
    const p = $('step-panel');
    if (step === 0) {
      p.innerHTML = '<h2>step 0 of ' + N + ': the seed</h2><p>The sweep starts at the output <b>' +
        esc(nameOf(D.output)) + '</b> with g = ' + brief(acc[D.output]) +
        '. Press &#x2192; (or next) to visit the first node; each step applies one rule.</p>';
      return;
    }
    const s = D.steps[step - 1], b = box[s.node];
    let h = '<h2>step ' + step + ' of ' + N + ': ' + esc(b.title) + ' = ' + esc(b.op) + '(' +
      b.inputs.map(function (i) { return i ? esc(box[i].title) : '-'; }).join(', ') + ')</h2>';
    h += '<p>rule: <code>' + esc(b.rule || '(not described)') + '</code><br>called at <code>' +
      esc(b.where) + '</code></p>';
    h += '<table><tr><th>incoming g = dL/d' + esc(b.title) + ' (complete)</th></tr><tr><td class="num">' +
      tensorText(s.g) + '</td></tr></table>';
    h += '<table><tr><th>input</th><th>local derivative (rule at g = 1)</th><th>sent to input</th><th>input accumulated so far</th></tr>';
    s.sent.forEach(function (e, j) {
      if (!e.to) return;
      h += '<tr><td>' + j + ': ' + esc(nameOf(e.to)) + '</td>';
      if (!e.grad) {
        h += '<td colspan="3">no gradient (constant)</td></tr>';
        return;
      }
      h += '<td class="num">' + tensorText(e.local) + '</td><td class="num">' + tensorText(e.grad) +
        '</td><td class="num">' + contributionsText(e.to) + '</td></tr>';
    });
    h += '</table>';
    if (step === N) h += '<p><b>Sweep done:</b> every leaf gradient is final.</p>';
    p.innerHTML = h;
  }

  function renderLeaves() {
    const rows = leaves.map(function (b) {
      const v = acc[b.id];
      return '<tr data-leaf="' + esc(b.title) + '" id="leaf-' + b.id + '"><td>' + esc(b.title) +
        ' ' + shapeText(b.value) + '</td><td class="num grad">' + (v ? list(v) : '(none yet)') + '</td></tr>';
    });
    $('leaf-grads').innerHTML = rows.join('');
  }

  function render(full) {
    marked.forEach(function (x) { x.e.classList.remove(x.c); });
    marked = [];
    const mark = function (e, c) { if (e) { e.classList.add(c); marked.push({ e: e, c: c }); } };
    if (full) {
      D.boxes.forEach(function (b) {
        const e = el[b.id];
        if (e) e.classList.toggle('done', visitedAt[b.id] !== undefined && visitedAt[b.id] < step);
      });
    } else if (step > 1) {
      const prev = el[D.steps[step - 2].node];
      if (prev) prev.classList.add('done');
    }
    dirty.forEach(function (id) {
      if (gline[id]) gline[id].textContent = 'g: ' + brief(acc[id]);
    });
    dirty = new Set();
    let current = null;
    if (step > 0) {
      const s = D.steps[step - 1];
      current = s.node;
      if (el[current]) el[current].classList.remove('done');
      mark(el[current], 'cur');
      s.sent.forEach(function (e, j) {
        if (!e.to || !e.grad) return;
        mark(el[e.to], 'recv');
        mark($('e_' + s.node + '_' + j), 'flow');
      });
      if (el[current] && el[current].scrollIntoView) el[current].scrollIntoView({ block: 'nearest', inline: 'center' });
    }
    renderPanel();
    renderLeaves();
    $('slider').value = String(step);
    $('stepinfo').textContent = 'step ' + step + ' / ' + N;
    const leafGrads = {};
    leaves.forEach(function (b) { leafGrads[b.title] = acc[b.id] ? acc[b.id].slice() : null; });
    window.tapegradState = { step: step, steps: N, current: current, layout: D.layout, leafGrads: leafGrads };
    const st = $('state');
    st.dataset.step = String(step);
    st.dataset.steps = String(N);
    st.dataset.current = current || '';
  }

  function inspect(id) {
    const b = box[id];
    let h = '<h3>' + esc(nameOf(id)) + '</h3><p>' + (b.kind === 'param' ? 'parameter' : b.kind === 'const' ? 'constant' : b.kind === 'back' ? 'recorded by a backward pass' : 'op result') +
      ', shape ' + shapeText(b.value) + (b.where ? ', called at <code>' + esc(b.where) + '</code>' : '') + '</p>';
    h += '<p>value: <span class="num">' + list(b.value.v.map(num)) + (b.value.v.length < b.value.n ? ' (first ' + b.value.v.length + ' of ' + b.value.n + ')' : '') + '</span></p>';
    h += '<p>gradient so far: <span class="num">' + (acc[id] ? list(acc[id]) : '(none yet)') + '</span></p>';
    $('inspect').innerHTML = h;
  }

  function stop() { if (timer) { clearInterval(timer); timer = null; } $('play').innerHTML = '&#x25B6; play'; }
  function play() {
    if (timer) { stop(); return; }
    if (step >= N) go(0);
    $('play').innerHTML = '&#x25A0; pause';
    timer = setInterval(function () { if (step >= N) stop(); else go(step + 1); }, 800);
  }

  $('slider').max = String(N);
  $('slider').addEventListener('input', function () { go(Number($('slider').value)); });
  $('first').addEventListener('click', function () { go(0); });
  $('prev').addEventListener('click', function () { go(step - 1); });
  $('next').addEventListener('click', function () { go(step + 1); });
  $('last').addEventListener('click', function () { go(N); });
  $('play').addEventListener('click', play);
  $('toggle-list').addEventListener('click', function () {
    const l = $('node-list');
    l.textContent = D.tapeText;
    l.hidden = !l.hidden;
  });
  if (svg) {
    svg.addEventListener('click', function (ev) {
      const g = ev.target.closest('g.node');
      if (g) inspect(g.id.slice(2));
    });
  }
  document.addEventListener('keydown', function (ev) {
    if (ev.target && ev.target.id === 'slider') return;
    if (ev.key === 'ArrowRight') { go(step + 1); ev.preventDefault(); }
    else if (ev.key === 'ArrowLeft') { go(step - 1); ev.preventDefault(); }
    else if (ev.key === 'Home') { go(0); ev.preventDefault(); }
    else if (ev.key === 'End') { go(N); ev.preventDefault(); }
    else if (ev.key === ' ' && !(ev.target && ev.target.tagName === 'BUTTON')) { play(); ev.preventDefault(); }
  });
  window.tapegradGo = go;
  reset();
  render(true);
})();
</script>
</body>
</html>
)PAGE";
  return text;
}

}  // namespace tapegrad::viz
