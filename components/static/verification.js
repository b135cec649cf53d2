/* OmniTrace explorer, client side: what a verified trace measured for the clicked sentence.
 *
 * Loaded after explorer.js (the app's gr.HTML and the offline report both get them together). It
 * reads the payload's `verification` header and each span's `ver` (components/verification_view.py)
 * and draws, in the detail panel: the measured effect beside each curated source, the flags, the
 * checks, a bar chart of every verified unit's effect (curated ones marked) and, for images, the
 * tile-effect heat map beside the attention one. Like explorer.js it writes data only with
 * textContent / setAttribute / style properties.
 */
function otNum(x, digits) {
  if (x === null || x === undefined) return '\u2013';
  var text = Number(x).toFixed(digits === undefined ? 2 : digits);
  return /^-0\.0*$/.test(text) ? text.slice(1) : text;  // no "-0.00"
}

// What removing a unit does to the sentence, in words: a positive drop lowers its log p.
function otDropText(drop) {
  return (drop < 0 ? 'raises' : 'lowers') + ' this sentence\u2019s log p by ' + otNum(Math.abs(drop)) + ' nats';
}

function otEffects(ver) {
  var map = {};
  (ver && ver.effects || []).forEach(function (e) { map[e[0]] = {drop: e[1], changed: !!e[2]}; });
  return map;
}

// Sentences with a flag get a mark in the output (called on every render: Gradio patches the DOM in place).
var OT_FLAG_NOTE = ' \u00b7 flagged by the verification: click for details';

function otMarkVerified(root, data) {
  root.querySelectorAll('.ot-sent').forEach(function (el) {
    el.classList.remove('ot-vflagged');
    el.setAttribute('title', (el.getAttribute('title') || '').split(OT_FLAG_NOTE)[0]);
  });
  if (!data.verification) return;
  data.spans.forEach(function (span) {
    var flags = span.ver && span.ver.flags;
    if (!flags || !(flags.cited_no_effect.length || flags.uncited_strong.length)) return;
    var sent = root.querySelector('.ot-sent[data-span="' + span.index + '"]');
    if (!sent) return;
    sent.classList.add('ot-vflagged');
    sent.setAttribute('title', sent.getAttribute('title') + OT_FLAG_NOTE);
  });
}

// Beside a curated source: the drop in the sentence's log p when it is removed.
function otEffectBadge(data, span, unit) {
  var eff = otEffects(span.ver)[unit];
  var badge = otEl('span', 'ot-eff');
  badge.setAttribute('data-effect-unit', String(unit));
  if (!eff) {
    badge.textContent = 'not measured';
    badge.classList.add('ot-eff-none');
    badge.setAttribute('title', 'this unit was not measured (the verification was stopped before it)');
    return badge;
  }
  var strong = eff.drop > data.verification.threshold;
  badge.classList.add(strong ? 'ot-eff-strong' : 'ot-eff-weak');
  badge.setAttribute('data-effect', String(eff.drop));
  badge.textContent = 'effect ' + otNum(eff.drop);
  badge.setAttribute('title', 'removing it ' + otDropText(eff.drop) +
                     (eff.changed ? '; greedy decoding would no longer write the sentence' : '') +
                     (strong ? '' : ' (not a measurable effect: at most ' + otNum(data.verification.threshold) + ')'));
  return badge;
}

function otUnitChip(data, u) {
  var unit = data.units[u];
  var chip = otEl('button', 'ot-vchip');
  chip.setAttribute('data-unit', String(u));
  if (!unit) { chip.textContent = 'unit ' + u; return chip; }
  chip.setAttribute('data-item', String(unit.item));
  if (unit.t0 !== null && unit.t0 !== undefined) chip.setAttribute('data-t0', String(unit.t0));
  chip.appendChild(otEl('span', 'ot-dot ot-m-' + unit.modality));
  chip.appendChild(otSourceName(unit.where, unit.name, unit.label));
  return chip;
}

function otFlags(data, ver) {
  var box = otEl('div', 'ot-vflags');
  var kinds = [
    ['cited_no_effect', 'Cited, no measurable effect:',
     'the signal cites it, but removing it does not lower the sentence\u2019s log p by more than the threshold'],
    ['uncited_strong', 'Not cited, strong effect:',
     'removing it lowers the sentence\u2019s log p by more than the threshold, but the signal does not cite it']];
  var any = false;
  kinds.forEach(function (k) {
    var units = ver.flags[k[0]] || [];
    if (!units.length) return;
    any = true;
    var row = otEl('div', 'ot-vflag');
    row.setAttribute('data-flag', k[0]);
    row.setAttribute('title', k[2]);
    row.appendChild(otEl('span', 'ot-vflagname', '\u2691 ' + k[1]));
    units.forEach(function (u) { row.appendChild(otUnitChip(data, u)); });
    box.appendChild(row);
  });
  if (!any) box.appendChild(otEl('p', 'ot-vok', '\u2713 Every measured cited source has an effect; no uncited unit has a strong one.'));
  return box;
}

function otChecks(data, ver) {
  var box = otEl('div', 'ot-vchecks');
  var check = ver.check;
  if (!check) {
    box.appendChild(otEl('p', 'ot-sub', 'The citation of this sentence was not checked' +
                         (typeof trigger === 'function' ? ': Verify it to check it.' : '.')));
    return box;
  }
  var items = [
    ['comprehensiveness', check.comp, 'drop when every cited unit is removed (higher: the citation holds what the sentence needs)'],
    ['sufficiency', check.suff, 'drop when every other unit is removed (lower: the citation alone keeps the sentence likely)']];
  Object.keys(check.top).forEach(function (k) {
    items.push(['top-' + k + ' drop', check.top[k], 'drop when the ' + k + ' unit(s) the signal ranks highest are removed']);
  });
  var list = otEl('dl', 'ot-vchecklist');
  items.forEach(function (it) {
    var pair = otEl('div');
    pair.setAttribute('title', it[2]);
    pair.appendChild(otEl('dt', null, it[0]));
    var dd = otEl('dd', null, otNum(it[1]));
    dd.setAttribute('data-check', it[0]);
    pair.appendChild(dd);
    list.appendChild(pair);
  });
  box.appendChild(list);
  if (check.stale) {
    box.appendChild(otEl('p', 'ot-sub', 'These checks were made for another citation (the curation changed since): ' +
                         'Verify again to redo them.'));
  }
  return box;
}

var OT_BAR_ROWS = 24;  // more units go behind a "more" toggle

function otBarRow(data, e, scale, threshold, cited) {
  var unit = data.units[e[0]];
  var row = otEl('div', 'ot-vrow');
  row.setAttribute('data-vunit', String(e[0]));
  row.setAttribute('data-v', String(e[1]));
  if (cited[e[0]]) row.classList.add('ot-vcited');
  if (e[1] > threshold) row.classList.add('ot-vstrong');
  var name = otEl('span', 'ot-vname');
  if (unit) {
    name.appendChild(otEl('span', 'ot-dot ot-m-' + unit.modality));
    name.appendChild(otSourceName(unit.where, unit.name, unit.label));
  }
  row.appendChild(name);
  var track = otEl('span', 'ot-vtrack');
  var bar = otEl('i', e[1] < 0 ? 'ot-vbar ot-vneg' : 'ot-vbar');
  bar.style.left = (100 * (scale.zero + Math.min(0, e[1]) / scale.span)) + '%';
  bar.style.width = (100 * Math.abs(e[1]) / scale.span) + '%';
  track.appendChild(bar);
  var zero = otEl('b', 'ot-vzero');
  zero.style.left = (100 * scale.zero) + '%';
  track.appendChild(zero);
  var line = otEl('b', 'ot-vthr');
  line.style.left = (100 * (scale.zero + threshold / scale.span)) + '%';
  track.appendChild(line);
  row.appendChild(track);
  row.appendChild(otEl('span', 'ot-vnum', otNum(e[1])));
  var marks = otEl('span', 'ot-vmarks');
  if (cited[e[0]]) marks.appendChild(otEl('span', 'ot-vcite', 'cited'));
  if (e[2]) marks.appendChild(otEl('span', 'ot-vchanged', 'changes it'));
  row.appendChild(marks);
  row.setAttribute('title', (unit ? unit.label : 'unit ' + e[0]) + ': removing it ' + otDropText(e[1]) +
                   (e[2] ? '; greedy decoding would write something else' : '') +
                   (cited[e[0]] ? ' (cited)' : ''));
  return row;
}

// Every verified unit's effect on the sentence, strongest first; cited units marked.
function otEffectChart(data, span) {
  var ver = span.ver, threshold = data.verification.threshold;
  var cited = {};
  span.sources.forEach(function (s) { cited[s.unit] = true; });
  var rows = ver.effects.slice().sort(function (a, b) { return b[1] - a[1] || a[0] - b[0]; });
  var box = otEl('div', 'ot-vchart');
  box.appendChild(otEl('p', 'ot-sub', 'Drop in this sentence\u2019s log-probability (nats) when each unit is removed: ' +
                       'to the right of 0 the sentence needs the unit; the red line marks a strong effect (' +
                       otNum(threshold) + ': the probability at least halves).'));
  if (!rows.length) { box.appendChild(otEl('p', 'ot-sub', 'No unit was measured yet.')); return box; }
  var lo = Math.min(0, rows[rows.length - 1][1]), hi = Math.max(threshold, rows[0][1]);
  var scale = {zero: -lo / (hi - lo), span: hi - lo};
  var first = otEl('div', 'ot-vrows');
  rows.slice(0, OT_BAR_ROWS).forEach(function (e) { first.appendChild(otBarRow(data, e, scale, threshold, cited)); });
  box.appendChild(first);
  if (rows.length > OT_BAR_ROWS) {
    var more = otEl('details', 'ot-vmore');
    more.appendChild(otEl('summary', null, (rows.length - OT_BAR_ROWS) + ' weaker unit(s)'));
    var rest = otEl('div', 'ot-vrows');
    rows.slice(OT_BAR_ROWS).forEach(function (e) { rest.appendChild(otBarRow(data, e, scale, threshold, cited)); });
    more.appendChild(rest);
    box.appendChild(more);
  }
  return box;
}

// A small copy of an input image with a tile grid over it; fill(tile element, k) colours each tile.
function otTilePanel(root, item, grid, caption, fill) {
  var fig = otEl('figure', 'ot-vfig');
  var source = root.querySelector('.ot-inputs .ot-imgwrap[data-item="' + item + '"]');
  var pic = otEl('div', 'ot-vimg');
  if (source) pic.style.aspectRatio = source.style.aspectRatio;
  var img = source && source.querySelector('img');
  if (img && img.getAttribute('src')) {
    var copy = otEl('img');
    copy.setAttribute('src', img.getAttribute('src'));
    copy.setAttribute('alt', '');
    pic.appendChild(copy);
  }
  var tiles = otEl('div', 'ot-tiles');
  tiles.style.gridTemplateRows = 'repeat(' + grid[0] + ', 1fr)';
  tiles.style.gridTemplateColumns = 'repeat(' + grid[1] + ', 1fr)';
  for (var k = 0; k < grid[0] * grid[1]; k++) {
    var tile = otEl('i', 'ot-tile');
    tile.setAttribute('data-tile', String(k));
    fill(tile, k);
    tiles.appendChild(tile);
  }
  pic.appendChild(tiles);
  fig.appendChild(pic);
  fig.appendChild(otEl('figcaption', null, caption));
  return fig;
}

// For each image with a tile map for this sentence: the signal's tile scores beside the measured drops.
function otTileMaps(root, data, span) {
  var box = otEl('div', 'ot-vtilemaps');
  span.ver.tiles.forEach(function (map) {
    var pair = otEl('div', 'ot-vpair');
    pair.setAttribute('data-tilemap-unit', String(map.unit));
    var unit = data.units[map.unit];
    pair.appendChild(otEl('p', 'ot-sub', 'Tiles of ' + (unit ? unit.where + ' ' + unit.name : 'unit ' + map.unit) +
                          ': the signal\u2019s attention (left) and the measured effect of removing each tile (right).'));
    var src = span.sources.filter(function (s) { return s.unit === map.unit && s.tiles; })[0];
    var row = otEl('div', 'ot-vfigs');
    row.appendChild(otTilePanel(root, map.item, map.grid, src ? 'attention (' + data.signal + ')' : 'attention: not cited',
                                function (tile, k) {
                                  if (src && k < src.tiles.length) tile.style.setProperty('--ot-h', String(src.tiles[k]));
                                }));
    var peak = 0;
    map.effects.forEach(function (e) { peak = Math.max(peak, Math.abs(e)); });
    // full colour at the peak, or at the strong-effect threshold when no tile reaches it: a map of
    // negligible drops stays faint
    var full = Math.max(peak, data.verification.threshold);
    var cols = map.grid[1];
    row.appendChild(otTilePanel(root, map.item, map.grid, 'measured effect (peak ' + otNum(peak) + ' nats)', function (tile, k) {
      var e = map.effects[k];
      tile.classList.add('ot-vtile');
      tile.setAttribute('data-v', String(e));
      tile.style.setProperty(e < 0 ? '--ot-neg' : '--ot-pos', String(Math.abs(e) / full));
      if (map.changed[k]) tile.classList.add('ot-vtile-changed');
      tile.setAttribute('title', 'tile ' + (Math.floor(k / cols) + 1) + ',' + (k % cols + 1) + ': removing it ' + otDropText(e) +
                        (map.changed[k] ? '; the sentence changes' : ''));
    }));
    pair.appendChild(row);
    box.appendChild(pair);
  });
  return box;
}

// The verification part of a sentence's detail panel (empty in a report of an unverified trace).
function otVerifySection(root, data, span) {
  var box = otEl('div', 'ot-verify');
  var v = data.verification;
  if (!v || !span.ver) {
    if (typeof trigger === 'function') {
      box.appendChild(otEl('p', 'ot-sub', 'Not verified yet: Verify sentence (above the explorer) measures what ' +
                           'removing each source does to this sentence.'));
    }
    return box;
  }
  var head = otEl('div', 'ot-dhead');
  head.appendChild(otEl('h4', null, 'Verification (' + v.mode + ' mode)'));
  head.appendChild(otEl('span', 'ot-conf', 'log p ' + otNum(span.ver.logp) + ' \u00b7 ' + v.units + ' of ' + v.of +
                        ' units measured' + (v.stopped ? ' \u00b7 stopped' : '')));
  box.appendChild(head);
  box.appendChild(otEl('p', 'ot-sub ot-vquestion', v.question));
  box.appendChild(otFlags(data, span.ver));
  box.appendChild(otChecks(data, span.ver));
  box.appendChild(otEffectChart(data, span));
  if (span.ver.tiles.length) box.appendChild(otTileMaps(root, data, span));
  return box;
}
