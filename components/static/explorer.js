/* OmniTrace explorer, client side.
 *
 * Shared by the Gradio app (the explorer gr.HTML runs it through js_on_load) and the offline
 * HTML report. It reads the JSON payload the server-side view stored in data-payload and does
 * every highlight in the browser, with no server round trip. Data is only ever written into
 * the page with textContent / setAttribute, never as HTML. What a verification measured is drawn by
 * verification.js, loaded after this file.
 */
function otEl(tag, cls, text) {
  var e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined && text !== null) e.textContent = String(text);
  return e;
}

function otPct(x) { return (100 * x).toFixed(0) + '%'; }

function otTime(t) { return (t === null || t === undefined) ? '' : Number(t).toFixed(1) + ' s'; }

function otMount(host) {
  var root = host.querySelector('.ot-root');
  if (!root) return;
  var data = {units: [], spans: [], tokens: []};
  try { data = JSON.parse(root.getAttribute('data-payload') || '{}'); } catch (err) { console.error('omnitrace: unreadable payload', err); }
  host.__ot = {root: root, data: data};
  otMarkVerified(root, data);
  if (!host.__otBound) {
    host.__otBound = true;
    host.addEventListener('click', function (ev) { otOnClick(host, ev); });
    host.addEventListener('keydown', function (ev) {
      if ((ev.key === 'Enter' || ev.key === ' ') && ev.target.closest && ev.target.closest('[data-span],[data-unit],[data-token]')) {
        ev.preventDefault();
        otOnClick(host, ev);
      }
    });
    // timeupdate does not bubble: listen in the capture phase to move the play heads
    host.addEventListener('timeupdate', function (ev) { otPlayhead(host, ev.target); }, true);
  }
  otApply(host);
}

function otOnClick(host, ev) {
  var t = ev.target;
  if (!t || !t.closest) return;
  var tok = t.closest('[data-token]');
  if (tok) { host.__otTok = Number(tok.getAttribute('data-token')); otApply(host); otNotify(host); return; }
  var go = t.closest('[data-goto-span]');
  var sent = go || t.closest('.ot-sent[data-span]');
  if (sent) {
    var mark = go ? null : t.closest('[data-tok]');  // a marked token of a given answer: focus it too
    host.__otSel = {span: Number(sent.getAttribute(go ? 'data-goto-span' : 'data-span'))};
    host.__otTok = mark ? Number(mark.getAttribute('data-tok')) : null;
    otApply(host);
    otNotify(host);
    return;
  }
  var unitEl = t.closest('[data-unit]');
  if (unitEl) {
    host.__otSel = {unit: Number(unitEl.getAttribute('data-unit'))};
    host.__otTok = null;
    otApply(host);
    otNotify(host, Number(unitEl.getAttribute('data-unit')));
    if (unitEl.hasAttribute('data-t0')) {
      otSeek(host, unitEl.getAttribute('data-item'), Number(unitEl.getAttribute('data-t0')));
    }
  }
}

// In the app, tell the server what was clicked (the layer x head panel follows it); the offline report
// has no server, and a trace without head masses has nothing to show there.
function otNotify(host, unit) {
  if (typeof trigger !== 'function' || !host.__ot || !host.__ot.data.heads) return;
  var sel = host.__otSel || {};
  var last = host.__otLastSpan;
  if (sel.span !== undefined) { last = sel.span; host.__otLastSpan = last; }
  trigger('click', {span: last === undefined ? null : last,
                    token: (host.__otTok === null || host.__otTok === undefined) ? null : host.__otTok,
                    unit: unit === undefined ? null : unit});
}

function otSeek(host, item, seconds) {
  var player = host.querySelector('.ot-item[data-item="' + item + '"] .ot-player');
  if (!player) return;
  try { player.currentTime = seconds; } catch (err) { /* not loaded yet: the browser seeks when it can */ }
  player.setAttribute('data-seeked', String(seconds));
  otPlayhead(host, player, seconds);
}

function otPlayhead(host, player, at) {
  if (!player || !player.classList || !player.classList.contains('ot-player')) return;
  var card = player.closest('.ot-item');
  var track = card && card.querySelector('.ot-segs');
  var duration = player.duration || Number((host.__ot && otItemDuration(host, card)) || 0);
  if (!track || !duration) return;
  var head = track.querySelector('.ot-playhead');
  if (!head) { head = otEl('i', 'ot-playhead'); track.appendChild(head); }
  var time = (at === undefined) ? player.currentTime : at;
  head.style.left = Math.min(100, 100 * time / duration) + '%';
}

function otItemDuration(host, card) {
  var segs = card.querySelectorAll('.ot-seg');
  if (!segs.length) return 0;
  return Number(segs[segs.length - 1].getAttribute('data-t1'));
}

function otClear(root) {
  root.querySelectorAll('.ot-lit,.ot-sel,.ot-cite,.ot-focus,.ot-tokfocus,.ot-gold').forEach(function (el) {
    el.classList.remove('ot-lit', 'ot-sel', 'ot-cite', 'ot-focus', 'ot-tokfocus', 'ot-gold');
    el.style.removeProperty('--ot-s');
  });
  root.querySelectorAll('.ot-tile').forEach(function (el) { el.style.removeProperty('--ot-h'); });
  root.classList.remove('ot-has-sel');
}

function otApply(host) {
  var st = host.__ot;
  if (!st) return;
  var root = st.root, data = st.data, sel = host.__otSel;
  otClear(root);
  if (!sel) return;
  var body = root.querySelector('.ot-detail-body');
  if (sel.span !== undefined) {
    var span = data.spans[sel.span];
    if (!span) { host.__otSel = null; return; }
    otLightSpan(root, span);
    if (body) body.replaceChildren(otSpanDetail(root, data, span, host.__otTok));
    if (host.__otTok !== null && host.__otTok !== undefined) otLightToken(root, data, host.__otTok);
  } else if (sel.unit !== undefined) {
    var unit = data.units[sel.unit];
    if (!unit) { host.__otSel = null; return; }
    otLightUnit(root, data, sel.unit);
    if (body) body.replaceChildren(otUnitDetail(root, data, sel.unit));
  }
  root.classList.add('ot-has-sel');
}

function otLightSpan(root, span) {
  var sent = root.querySelector('.ot-sent[data-span="' + span.index + '"]');
  if (sent) sent.classList.add('ot-sel');
  (span.gold || []).forEach(function (u) {  // expected by the ground truth: outlined
    root.querySelectorAll('.ot-inputs [data-unit="' + u + '"]').forEach(function (el) { el.classList.add('ot-gold'); });
  });
  span.sources.forEach(function (s) {
    root.querySelectorAll('.ot-inputs [data-unit="' + s.unit + '"]').forEach(function (el) {
      el.classList.add('ot-lit');
      el.style.setProperty('--ot-s', String(s.share));
    });
    if (s.tiles) {
      var tiles = root.querySelectorAll('.ot-inputs .ot-imgwrap[data-item="' + s.item + '"] .ot-tile');
      tiles.forEach(function (tile, k) {
        if (k < s.tiles.length) tile.style.setProperty('--ot-h', String(s.tiles[k]));
      });
    }
  });
}

function otLightUnit(root, data, unit) {
  root.querySelectorAll('.ot-inputs [data-unit="' + unit + '"]').forEach(function (el) { el.classList.add('ot-focus'); });
  data.spans.forEach(function (span) {
    span.sources.forEach(function (s) {
      if (s.unit !== unit) return;
      var sent = root.querySelector('.ot-sent[data-span="' + span.index + '"]');
      if (sent) { sent.classList.add('ot-cite'); sent.style.setProperty('--ot-s', String(s.share)); }
    });
  });
}

function otLightToken(root, data, t) {
  var row = root.querySelector('.ot-detail [data-token="' + t + '"]');
  if (row) row.classList.add('ot-tokfocus');
  var tok = data.tokens[t];
  if (tok && tok.unit >= 0) {
    root.querySelectorAll('.ot-inputs [data-unit="' + tok.unit + '"]').forEach(function (el) { el.classList.add('ot-tokfocus'); });
  }
}

function otModBar(mods, modalities) {
  var bar = otEl('div', 'ot-mbar-big');
  (modalities || ['text', 'image', 'audio', 'video']).forEach(function (m) {
    if (!mods[m]) return;
    var seg = otEl('i', 'ot-m-' + m, m + ' ' + otPct(mods[m]));
    seg.style.width = (100 * mods[m]) + '%';
    bar.appendChild(seg);
  });
  return bar;
}

function otSentenceText(root, index) {
  var t = root.querySelector('.ot-sent[data-span="' + index + '"] .ot-stext');
  return t ? t.textContent : '';
}

function otUnitLabel(data, u) {
  var unit = data.units[u];
  return unit ? unit.label : '(none)';
}

// A source's label for a narrow place: what tells it apart (time range, image and tile) first and
// never cut, then the rest of its label, cut with an ellipsis; the whole label as its tooltip.
function otSourceName(where, name, label) {
  var box = otEl('span', 'ot-srcname');
  box.setAttribute('title', label);
  if (where) box.appendChild(otEl('span', 'ot-where', where));
  box.appendChild(otEl('span', 'ot-name', name));
  return box;
}

function otSpanDetail(root, data, span, tokFocus) {
  var box = otEl('div', 'ot-detail-span');
  var head = otEl('div', 'ot-dhead');
  head.appendChild(otEl('h4', null, 'Sentence ' + (span.index + 1)));
  head.appendChild(otEl('span', 'ot-conf', 'confidence ' + Number(span.conf).toFixed(3)));
  box.appendChild(head);
  box.appendChild(otEl('blockquote', 'ot-quote', otSentenceText(root, span.index)));
  if (span.weak) {
    box.appendChild(otEl('p', 'ot-warn', 'No strong source: no input unit holds enough of this sentence\u2019s vote under the current curation.'));
  } else {
    box.appendChild(otModBar(span.mods, data.modalities));
  }
  var list = otEl('ol', 'ot-srclist');
  span.sources.forEach(function (s) {
    var li = otEl('li');
    var b = otEl('button', 'ot-src ot-m-' + s.modality);
    b.setAttribute('data-unit', String(s.unit));
    b.setAttribute('data-item', String(s.item));
    if (s.t0 !== undefined && s.t0 !== null) b.setAttribute('data-t0', String(s.t0));
    var label = otEl('span', 'ot-srclabel');
    label.appendChild(otEl('span', 'ot-dot'));
    label.appendChild(otSourceName(s.where, s.name === undefined ? s.label : s.name, s.label));
    b.appendChild(label);
    var meter = otEl('span', 'ot-meter');
    var fill = otEl('i');
    fill.style.width = (100 * s.share) + '%';
    meter.appendChild(fill);
    b.appendChild(meter);
    b.appendChild(otEl('span', 'ot-share', otPct(s.share)));
    if (s.tracks) {
      var parts = Object.keys(s.tracks).map(function (k) { return k + ' ' + otPct(s.tracks[k]); });
      b.appendChild(otEl('span', 'ot-tracks', parts.join(' / ')));
    }
    if (s.rescued) b.appendChild(otEl('span', 'ot-rescued', 'run rescue'));
    if (span.ver) b.appendChild(otEffectBadge(data, span, s.unit));
    li.appendChild(b);
    list.appendChild(li);
  });
  box.appendChild(list);
  box.appendChild(otVerifySection(root, data, span));
  if (span.gold) box.appendChild(otGoldList(data, span));
  if (span.behind) box.appendChild(otBehind(data, span.behind));
  box.appendChild(otTokenTable(data, span, tokFocus));
  return box;
}

// The sources the ground truth expects for this sentence, each marked traced or missed.
function otGoldList(data, span) {
  var box = otEl('div', 'ot-goldbox');
  var traced = {};
  span.sources.forEach(function (s) { traced[s.unit] = true; });
  box.appendChild(otEl('p', 'ot-sub', span.gold.length ? 'Expected by the ground truth (outlined in the inputs):'
                                                        : 'The ground truth expects no source for this sentence.'));
  var list = otEl('ul', 'ot-goldlist');
  span.gold.forEach(function (u) {
    var unit = data.units[u];
    if (!unit) return;
    var li = otEl('li', traced[u] ? 'ot-hit' : 'ot-miss');
    li.setAttribute('data-gold-unit', String(u));
    li.appendChild(otEl('span', 'ot-dot ot-m-' + unit.modality));
    li.appendChild(otSourceName(unit.where, unit.name, unit.label));
    li.appendChild(otEl('span', 'ot-goldmark', traced[u] ? 'traced' : 'missed'));
    list.appendChild(li);
  });
  box.appendChild(list);
  return box;
}

// Behind the curated list: every unit's share of the sentence before curation, the thresholds drawn.
function otBehind(data, behind) {
  var wrap = otEl('details', 'ot-behind');
  wrap.appendChild(otEl('summary', null, 'Behind the curated list: every unit\u2019s share before curation'));
  var notes = [];
  if (behind.p_min !== null && behind.p_min !== undefined) notes.push('p_min ' + Number(behind.p_min).toFixed(2) + ' (line)');
  if (behind.coverage !== null && behind.coverage !== undefined) notes.push('coverage ' + Number(behind.coverage).toFixed(2));
  wrap.appendChild(otEl('p', 'ot-sub', 'Bars: share of the sentence\u2019s vote (curation\u2019s input); thin bars: share of its attention mass. ' +
                        (notes.length ? notes.join(', ') : 'no threshold') + '.'));
  var short = {'kept': 'kept', 'rescued': 'rescued', 'below p_min': '< p_min', 'after coverage': 'after cov.',
               'no token': 'no token', 'no vote': 'no vote'};
  var table = otEl('table', 'ot-behindtable');
  var thead = otEl('thead');
  var hr = otEl('tr');
  ['unit', 'vote / mass', '', 'outcome'].forEach(function (h) { hr.appendChild(otEl('th', null, h)); });
  thead.appendChild(hr);
  table.appendChild(thead);
  var tbody = otEl('tbody');
  behind.rows.forEach(function (r) {
    var unit = r[0] >= 0 ? data.units[r[0]] : null;
    var tr = otEl('tr', 'ot-out-' + String(r[3]).replace(/[^a-z]+/g, '-'));
    tr.setAttribute('data-behind-unit', String(r[0]));
    tr.setAttribute('data-outcome', String(r[3]));
    tr.setAttribute('title', 'vote share ' + otPct(r[1]) + ', mass share ' + otPct(r[2]) +
                    (r[4] === null || r[4] === undefined ? '' : ', kept so far ' + otPct(r[4])) + ': ' + r[3]);
    var name = otEl('td', 'ot-bname');
    if (unit) {
      name.appendChild(otEl('span', 'ot-dot ot-m-' + unit.modality));
      name.appendChild(otSourceName(unit.where, unit.name, unit.label));
    } else {
      name.appendChild(document.createTextNode('(no source)'));
    }
    tr.appendChild(name);
    var cell = otEl('td', 'ot-bbar');
    var track = otEl('span', 'ot-btrack');
    var vote = otEl('i', 'ot-bvote');
    vote.style.width = (100 * Math.min(1, r[1])) + '%';
    var mass = otEl('i', 'ot-bmass');
    mass.style.width = (100 * Math.min(1, r[2])) + '%';
    track.appendChild(vote);
    track.appendChild(mass);
    if (behind.p_min !== null && behind.p_min !== undefined) {
      var line = otEl('b', 'ot-bpmin');
      line.style.left = (100 * behind.p_min) + '%';
      line.setAttribute('title', 'p_min ' + behind.p_min);
      track.appendChild(line);
    }
    cell.appendChild(track);
    tr.appendChild(cell);
    tr.appendChild(otEl('td', 'ot-bnum', otPct(r[1]) + ' / ' + otPct(r[2])));
    tr.appendChild(otEl('td', 'ot-boutcome', short[r[3]] || r[3]));
    tbody.appendChild(tr);
  });
  table.appendChild(tbody);
  wrap.appendChild(table);
  if (behind.more) wrap.appendChild(otEl('p', 'ot-sub', behind.more + ' weaker unit(s) not shown.'));
  return wrap;
}

function otTokenTable(data, span, tokFocus) {
  var wrap = otEl('details', 'ot-tokens');
  wrap.open = true;
  var rated = data.tokens.length && data.tokens[0].lp !== undefined;
  wrap.appendChild(otEl('summary', null, 'Tokens: POS, POS vote weight (wt), source, confidence' +
                        (rated ? ', log-probability under the model' : '')));
  var table = otEl('table', 'ot-toktable');
  var hr = otEl('tr');
  ['token', 'POS', 'wt', 'source', 'conf.'].concat(rated ? ['log p'] : []).forEach(function (h) { hr.appendChild(otEl('th', null, h)); });
  var thead = otEl('thead');
  thead.appendChild(hr);
  table.appendChild(thead);
  var tbody = otEl('tbody');
  for (var t = span.tokens[0]; t < span.tokens[1]; t++) {
    var tok = data.tokens[t];
    if (!tok) continue;
    var tr = otEl('tr');
    tr.setAttribute('data-token', String(t));
    tr.setAttribute('tabindex', '0');
    var src = otUnitLabel(data, tok.unit);
    var unit = tok.unit >= 0 ? data.units[tok.unit] : null;
    var mod = unit ? unit.modality : '';
    var word = otEl('td', 'ot-toktext', JSON.stringify(tok.text));
    word.setAttribute('title', JSON.stringify(tok.text));
    tr.appendChild(word);
    tr.appendChild(otEl('td', null, tok.pos));
    tr.appendChild(otEl('td', null, Number(tok.w).toFixed(2)));
    var cell = otEl('td', 'ot-toksrc');
    if (mod) cell.appendChild(otEl('span', 'ot-dot ot-m-' + mod));
    cell.appendChild(unit ? otSourceName(tok.where || unit.where, unit.name, src) : document.createTextNode(src));
    tr.appendChild(cell);
    var conf = otEl('td', 'ot-tokconf', Number(tok.conf).toFixed(3));
    conf.style.setProperty('--ot-s', String(Math.min(1, tok.conf)));
    tr.appendChild(conf);
    if (rated) {
      var lp = otEl('td', 'ot-toklp', tok.lp === undefined ? '' : Number(tok.lp).toFixed(2));
      if (tok.alt !== undefined) {  // the model's own choice was another token
        tr.classList.add('ot-disagree');
        lp.appendChild(otEl('span', 'ot-alt', 'model: ' + JSON.stringify(tok.alt) + ' (' + Number(tok.altlp).toFixed(2) + ')'));
      }
      tr.appendChild(lp);
    }
    tbody.appendChild(tr);
  }
  table.appendChild(tbody);
  wrap.appendChild(table);
  if (tokFocus !== null && tokFocus !== undefined && data.tokens[tokFocus]) {
    var tk = data.tokens[tokFocus];
    var top = otEl('p', 'ot-toptalk');
    top.textContent = 'Token ' + JSON.stringify(tk.text) + ' \u2014 strongest units: ' + tk.top.map(function (p) {
      return otUnitLabel(data, p[0]) + ' (' + Number(p[1]).toFixed(3) + ')';
    }).join(', ');
    wrap.appendChild(top);
  }
  return wrap;
}

function otUnitDetail(root, data, u) {
  var unit = data.units[u];
  var box = otEl('div', 'ot-detail-unit');
  var head = otEl('div', 'ot-dhead');
  head.appendChild(otEl('span', 'ot-badge ot-m-' + unit.modality, unit.modality));
  head.appendChild(otEl('h4', null, unit.label));
  box.appendChild(head);
  if (unit.t0 !== null && unit.t0 !== undefined) box.appendChild(otEl('p', 'ot-time', otTime(unit.t0) + ' \u2013 ' + otTime(unit.t1)));
  var citing = [];
  data.spans.forEach(function (span) {
    span.sources.forEach(function (s) { if (s.unit === u) citing.push([span.index, s.share]); });
  });
  if (!citing.length) {
    box.appendChild(otEl('p', 'ot-warn', 'No output sentence draws on this source under the current curation.'));
    return box;
  }
  box.appendChild(otEl('p', 'ot-sub', 'Drawn on by ' + citing.length + ' sentence' + (citing.length > 1 ? 's' : '') + ':'));
  var list = otEl('ol', 'ot-citelist');
  citing.forEach(function (c) {
    var li = otEl('li');
    var b = otEl('button', 'ot-citing');
    b.setAttribute('data-goto-span', String(c[0]));
    b.appendChild(otEl('span', 'ot-citetext', otSentenceText(root, c[0])));
    b.appendChild(otEl('span', 'ot-share', otPct(c[1])));
    li.appendChild(b);
    list.appendChild(li);
  });
  box.appendChild(list);
  return box;
}
