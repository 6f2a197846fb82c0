// coilvis: the unwind animation of a coil.
//
// The body of one Bokeh CustomJS callback (coil_unwind_js). Every control of the unwind
// executes it with its own action in cb_data ({action: "toggle"}; "play", "pause",
// "restart", "scrub", "speed", "loop"), so the page holds this code once; the first call
// builds one controller, kept on the segment source, which later calls reuse until the
// source gets new data (a live explorer shows a new run in the views it has): the next
// call then builds a new one, and the old one stops at its next frame.
//
// Arguments (Bokeh models and numbers only; token text is read from data sources and
// shown through PreText, which escapes it):
//   segments     the coil's segment source: xs/ys (n, m) polygons, x/y/angle_rad (coiled
//                centres), x_line/y_line/angle_line_rad (where each segment goes),
//                anchor_x/anchor_y (where arcs attach), start_s/dwell_s (the schedule)
//   links        the attention link source, or null
//   labels       the fitted label source (pos, x, y, angle_rad), or null
//   mass         the mass rings' source, or null: k + 1 pieces per segment (rows i * (k + 1)
//                onward are segment i's), xs/ys (rows, m) polygons, t_lo/t_hi and
//                t_line_lo/t_line_hi each piece's radial bounds on the coil and on the line
//   playhead     a one-row source (x, y) marking the current position
//   scrub        Slider over positions [0, n]: the playhead, and the control to move it
//   speed        Slider: playback speed multiplier
//   play         Button: play / pause
//   loop         Toggle: start again at the end
//   readout      PreText: the current token and the model's top-k there
//   text_format  CustomJSHover that writes a position's "token" / "next" / "topk" text
//                (each token as its label and its id)
//   line_local_x, line_local_y   (m,) vertices of a segment on the line, in its own frame
//   line_anchor_dx, line_anchor_dy   where arcs attach on the line, in the segment's frame
//   highlight    the arcs' highlight filter (the hovered or selected position's links), or null
//   front, hidden, color_column   the front layer (coilvis/views/coil/front.py): its
//                segment source, the filter hiding its positions from the main renderers,
//                the column its fill is mapped from; front is null for no front layer
//   front_mass, hidden_pieces     its rings' source and the filter hiding them, or null
//   front_outline, hidden_outline its rings' outlines (the front's positions and one more on
//                each side) and the filter hiding them, or null
//   front_links, front_crossing, hidden_links, front_highlight   its arcs' sources (the
//                links of its positions, which move, and the other arcs that cross it,
//                which do not), the filter hiding both from the main arcs, its highlight
//                filter, or null
//   horizon_s, max_front          how far ahead a front reaches: seconds (at the current
//                speed) and positions
//   depth_scale, depth_max        the arcs' shape (coilvis.geometry.arcs.js_constants)
//   max_crossing  the most arcs of other positions that the front draws above its own
//
// Each frame only the segments whose unwind weight changed are moved. The blend is
// coilvis.geometry.unwind's, with front_width 1: the weight smoothstep(progress - i), the
// centre linear, the angle by the shortest turn, the polygon and the arc anchor carried in
// the segment's own frame, the label angle by the shortest turn between upright angles; the
// mass rings are cut from the moving segment at radial bounds blended by the same weight.
// The Python is the reference: tests/test_unwind.py runs this file in headless Chromium and
// checks segments, labels, anchors, arcs and the playhead against
// coilvis.geometry.unwind_positions / unwind_anchors / bent_arcs at playhead positions
// between the coil and the rows (tests/test_coil_mass.py the rings against
// coilvis.geometry.unwind_shares).
//
// Frames repaint the overlay canvas only. Bokeh paints renderers of level "overlay" on a
// canvas above the main one and repaints just that canvas when only they changed; the main
// canvas holds every segment and arc, longer than a frame to repaint at thousands of
// positions. While playing, the positions from the playhead to horizon_s ahead (the front)
// are drawn by the front layer's overlay renderers and hidden from the main ones; a frame
// moves them (in the segment source, in place, and in the front's copies) and tells only
// the overlay sources. The labels, the arcs' highlight and the playhead are overlays too.
// When the playhead passes the front, or stops, the unwind commits: the main sources are
// told their data changed (one repaint of the main canvas), the selection follows the
// playhead (a page's table and lens follow it), and a new front is cut, empty when stopped.

const NAME = "__coilvis_unwind"

function smoothstep(u) {
  return u <= 0 ? 0 : u >= 1 ? 1 : u * u * (3 - 2 * u)
}

function wrap(a) {
  // angle in (-pi, pi]
  const two_pi = 2 * Math.PI
  let r = (a + Math.PI) % two_pi
  if (r < 0) r += two_pi
  return r - Math.PI === -Math.PI ? Math.PI : r - Math.PI
}

function make_controller() {
  const d = segments.data
  const n = d.pos.length
  const xs = d.xs, ys = d.ys
  const m = xs.shape != null ? xs.shape[1] : Math.round(xs.length / n)
  const start = d.start_s, dwell = d.dwell_s
  const total = start[n - 1] + dwell[n - 1]
  // the coiled state, kept: the data arrays below are moved in place
  const cx0 = Float64Array.from(d.x), cy0 = Float64Array.from(d.y), a0 = Float64Array.from(d.angle_rad)
  const cx1 = d.x_line, cy1 = d.y_line, a1 = d.angle_line_rad
  const turn = new Float64Array(n)
  for (let i = 0; i < n; i++) turn[i] = wrap(a1[i] - a0[i])
  // each coiled polygon and anchor in its segment's own frame
  const lx = new Float64Array(n * m), ly = new Float64Array(n * m)
  const ax = new Float64Array(n), ay = new Float64Array(n)
  for (let i = 0; i < n; i++) {
    const c = Math.cos(-a0[i]), s = Math.sin(-a0[i])
    for (let j = 0; j < m; j++) {
      const dx = xs[i * m + j] - cx0[i], dy = ys[i * m + j] - cy0[i]
      lx[i * m + j] = c * dx - s * dy
      ly[i * m + j] = s * dx + c * dy
    }
    const dx = d.anchor_x[i] - cx0[i], dy = d.anchor_y[i] - cy0[i]
    ax[i] = c * dx - s * dy
    ay[i] = s * dx + c * dy
  }
  let label_rows = null, label_a0 = null
  if (labels != null) {
    const ld = labels.data
    label_rows = new Map()
    for (let r = 0; r < ld.pos.length; r++) label_rows.set(ld.pos[r], r)
    label_a0 = Float64Array.from(ld.angle_rad)
  }
  const weight = new Float64Array(n)  // 0 coiled .. 1 on the line
  const pieces = mass == null ? 0 : Math.round(mass.data.pos.length / n)  // per segment

  const state = {
    n, total, t_s: 0, progress: 0, playing: false, last_ms: null, speed: speed.value,
    loop: loop.active, current: -1, frames: 0, renders: 0, commits: 0, raf: null, set_value: 0,
    slow_ms: -Infinity, readout_stale: false, primary_stale: false, clock_ms: null,
    commit_ms: null, commit_s: 0,
  }

  function position_at(t) {
    if (t <= 0) return 0
    if (t >= total) return n
    let lo = 0, hi = n - 1
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1
      if (start[mid] <= t) lo = mid
      else hi = mid - 1
    }
    return lo + Math.min(1, (t - start[lo]) / dwell[lo])
  }

  function time_at(p) {
    if (p <= 0) return 0
    if (p >= n) return total
    const i = Math.floor(p)
    return start[i] + (p - i) * dwell[i]
  }

  function move_mass(i, w) {
    // segment i's pieces, cut from its polygon as coilvis.geometry.radial_pieces cuts them:
    // vertex v < m/2 on the curve at t_hi, vertex m-1-v on the curve at t_lo, both between
    // the outer vertex v and the inner vertex m-1-v facing it
    const md = mass.data, px = md.xs, py = md.ys, h = m / 2
    for (let j = 0; j < pieces; j++) {
      const r = i * pieces + j
      const lo = md.t_lo[r] + w * (md.t_line_lo[r] - md.t_lo[r])
      const hi = md.t_hi[r] + w * (md.t_line_hi[r] - md.t_hi[r])
      for (let v = 0; v < h; v++) {
        const ox = xs[i * m + v], oy = ys[i * m + v], ix = xs[i * m + m - 1 - v], iy = ys[i * m + m - 1 - v]
        px[r * m + v] = (1 - hi) * ix + hi * ox
        py[r * m + v] = (1 - hi) * iy + hi * oy
        px[r * m + m - 1 - v] = (1 - lo) * ix + lo * ox
        py[r * m + m - 1 - v] = (1 - lo) * iy + lo * oy
      }
    }
  }

  function move(i, w) {
    weight[i] = w
    const a = a0[i] + w * turn[i]
    const c = Math.cos(a), s = Math.sin(a)
    const x = cx0[i] + w * (cx1[i] - cx0[i]), y = cy0[i] + w * (cy1[i] - cy0[i])
    for (let j = 0; j < m; j++) {
      const u = lx[i * m + j] + w * (line_local_x[j] - lx[i * m + j])
      const v = ly[i * m + j] + w * (line_local_y[j] - ly[i * m + j])
      xs[i * m + j] = x + c * u - s * v
      ys[i * m + j] = y + s * u + c * v
    }
    d.x[i] = x
    d.y[i] = y
    d.angle_rad[i] = a
    if (pieces > 0) move_mass(i, w)
    const u = ax[i] + w * (line_anchor_dx - ax[i]), v = ay[i] + w * (line_anchor_dy - ay[i])
    d.anchor_x[i] = x + c * u - s * v
    d.anchor_y[i] = y + s * u + c * v
    if (label_rows != null && label_rows.has(i)) {
      const r = label_rows.get(i), ld = labels.data
      ld.x[r] = x
      ld.y[r] = y
      ld.angle_rad[r] = label_a0[r] + w * wrap(0 - label_a0[r])
      return true
    }
    return false
  }

  // The front: positions [win.a, win.b) drawn by the overlay renderers (empty: none), the
  // rows of the link source with an end there, and those of other arcs crossing it.
  const win = {a: 0, b: 0, links: [], crossing: []}
  const has_front = front != null

  function range(lo, hi) {
    const out = new Array(Math.max(0, hi - lo))
    for (let i = lo; i < hi; i++) out[i - lo] = i
    return out
  }

  function links_of(lo, hi, pos) {
    // rows of the link source with an end in [lo, hi), or at pos when pos >= 0
    const out = []
    if (links == null) return out
    const q = links.data.query, k = links.data.key
    for (let j = 0; j < q.length; j++) {
      const a = q[j], b = k[j]
      if (pos >= 0 ? (a === pos || b === pos) : ((a >= lo && a < hi) || (b >= lo && b < hi))) out.push(j)
    }
    return out
  }

  function links_in_front(lo, hi) {
    // The links the front draws: {own: those with an end in [lo, hi), crossing: those whose
    // arc passes over a position there or next to it} (drawn above it on one canvas, they
    // must be above it on the overlay too; with rings, a neighbour's outline is on the
    // overlay). An arc is the quadratic coilvis.geometry.bent_arcs places, in 16 chords,
    // each tested by its bounding box against the positions' boxes (grown by half a band:
    // the arcs' width), so a few arcs that pass near are drawn there too; arcs are all one
    // colour, so the order they are drawn in does not show. Thousands cross the inner turns
    // of a long coil (the arcs to positions already on the rows): at most max_crossing, the
    // heaviest (the most visible), so that a frame stays short.
    const own = new Set(links_of(lo, hi, -1))
    const margin = Math.abs(line_anchor_dy), boxes = []
    let ux0 = Infinity, uy0 = Infinity, ux1 = -Infinity, uy1 = -Infinity
    for (let i = Math.max(0, lo - 1); i < Math.min(n, hi + 1); i++) {
      let x0 = Infinity, y0 = Infinity, x1 = -Infinity, y1 = -Infinity
      for (let j = 0; j < m; j++) {
        const x = xs[i * m + j], y = ys[i * m + j]
        x0 = Math.min(x0, x); x1 = Math.max(x1, x); y0 = Math.min(y0, y); y1 = Math.max(y1, y)
      }
      boxes.push([x0 - margin, y0 - margin, x1 + margin, y1 + margin])
      ux0 = Math.min(ux0, x0 - margin); uy0 = Math.min(uy0, y0 - margin)
      ux1 = Math.max(ux1, x1 + margin); uy1 = Math.max(uy1, y1 + margin)
    }
    const q = links.data.query, k = links.data.key, axs = d.anchor_x, ays = d.anchor_y
    const crossing = []
    for (let j = 0; j < q.length; j++) {
      if (own.has(j)) continue
      const a = q[j], b = k[j], f = Math.min(depth_max, depth_scale * Math.abs(b - a) / n)
      const px = axs[a], py = ays[a], rx = axs[b], ry = ays[b]
      const cx = (1 - f) * 0.5 * (px + rx), cy = (1 - f) * 0.5 * (py + ry)
      const outside_x = Math.max(px, cx, rx) < ux0 || Math.min(px, cx, rx) > ux1
      if (outside_x || Math.max(py, cy, ry) < uy0 || Math.min(py, cy, ry) > uy1) continue
      let x = px, y = py, hit = false
      for (let step = 1; step <= 16 && !hit; step++) {
        const t = step / 16, u = 1 - t
        const nx = u * u * px + 2 * u * t * cx + t * t * rx, ny = u * u * py + 2 * u * t * cy + t * t * ry
        const cx0 = Math.min(x, nx), cx1 = Math.max(x, nx), cy0 = Math.min(y, ny), cy1 = Math.max(y, ny)
        if (!(cx1 < ux0 || cx0 > ux1 || cy1 < uy0 || cy0 > uy1)) {
          for (const box of boxes) {
            if (!(cx1 < box[0] || cx0 > box[2] || cy1 < box[1] || cy0 > box[3])) { hit = true; break }
          }
        }
        x = nx
        y = ny
      }
      if (hit) crossing.push(j)
    }
    const weights = links.data.weight
    if (crossing.length > max_crossing) crossing.sort((i, j) => weights[j] - weights[i]).length = max_crossing
    return {own: Array.from(own), crossing: crossing.sort((i, j) => i - j)}
  }

  function set_indices(filter, indices) {
    // only a change repaints what the filter serves; says whether it changed
    const now = filter.indices
    if (now.length === indices.length && indices.every((v, j) => v === now[j])) return false
    filter.indices = indices
    return true
  }

  function copy_row(src, i, dst) {
    // row i of a flat (rows, width) array into dst (width,); by index: BokehJS's ndarrays
    // are typed arrays whose subarray() does not slice
    const width = dst.length
    for (let j = 0; j < width; j++) dst[j] = src[i * width + j]
    return dst
  }

  function fill_front() {
    // the front's sources from the moved data (empty when the front is)
    const {a, b} = win, w = b - a
    const fd = {pos: new Int32Array(w), xs: new Array(w), ys: new Array(w)}
    const color = new Float64Array(w), values = d[color_column]
    for (let r = 0; r < w; r++) {
      fd.pos[r] = a + r
      fd.xs[r] = copy_row(xs, a + r, new Float64Array(m))
      fd.ys[r] = copy_row(ys, a + r, new Float64Array(m))
      color[r] = values[a + r]
    }
    fd[color_column] = color
    front.data = fd
    if (front_mass != null) {
      const md = mass.data, rows = w * pieces
      const fm = {xs: new Array(rows), ys: new Array(rows), color_pct: new Float64Array(rows)}
      for (let r = 0; r < rows; r++) {
        const row = a * pieces + r
        fm.xs[r] = copy_row(md.xs, row, new Float64Array(m))
        fm.ys[r] = copy_row(md.ys, row, new Float64Array(m))
        fm.color_pct[r] = md.color_pct[row]
      }
      front_mass.data = fm
      // the outlines, white hairlines above every ring: the front's and its neighbours',
      // so that no ring of the front covers a neighbour's
      const lo = Math.max(0, a - 1), hi = b > a ? Math.min(n, b + 1) : lo
      const fo = {pos: new Int32Array(hi - lo), xs: [], ys: []}
      for (let i = lo; i < hi; i++) {
        fo.pos[i - lo] = i
        fo.xs.push(copy_row(xs, i, new Float64Array(m)))
        fo.ys.push(copy_row(ys, i, new Float64Array(m)))
      }
      front_outline.data = fo
    }
    if (front_links != null) {
      const ld = links.data, rows = (which) => {
        const out = {}
        for (const c of ["query", "key", "weight", "choice"]) out[c] = ld[c].constructor.from(which, (j) => ld[c][j])
        return out
      }
      front_links.data = rows(win.links)
      front_crossing.data = rows(win.crossing)
    }
  }

  function update_front(lo, hi) {
    // copy the moved positions [lo, hi] (all in the front) into the front's sources
    const fd = front.data
    for (let i = lo; i <= hi; i++) {
      const r = i - win.a
      copy_row(xs, i, fd.xs[r])
      copy_row(ys, i, fd.ys[r])
    }
    front.change.emit()
    if (front_mass != null) {
      const md = mass.data, fm = front_mass.data
      for (let row = lo * pieces; row < (hi + 1) * pieces; row++) {
        const r = row - win.a * pieces
        copy_row(md.xs, row, fm.xs[r])
        copy_row(md.ys, row, fm.ys[r])
      }
      front_mass.change.emit()
      const fo = front_outline.data, first = fo.pos[0]
      for (let i = lo; i <= hi; i++) {
        copy_row(xs, i, fo.xs[i - first])
        copy_row(ys, i, fo.ys[i - first])
      }
      front_outline.change.emit()
    }
    if (front_links != null && win.links.length > 0) front_links.change.emit()  // its arcs re-read the anchors
  }

  function select(current) {
    // the playhead's position selected: in the front when it is there, else in the segments
    const in_front = current >= win.a && current < win.b
    if (has_front) set_indices(front.selected, in_front ? [current - win.a] : [])
    if (front_outline != null) {
      const first = front_outline.data.pos.length > 0 ? front_outline.data.pos[0] : 0
      set_indices(front_outline.selected, in_front ? [current - first] : [])
    }
    if (front_highlight != null) {
      const rows = []
      if (in_front) for (let r = 0; r < win.links.length; r++) {
        const j = win.links[r]
        if (links.data.query[j] === current || links.data.key[j] === current) rows.push(r)
      }
      set_indices(front_highlight, rows)
    }
  }

  function commit(p, stopped) {
    // Hand the moved positions back to the main renderers, select the playhead's position
    // and cut a new front from it (none when stopped): one repaint of the main canvas.
    const current = Math.min(n - 1, Math.floor(p))
    if (!has_front) stopped = true
    let a = 0, b = 0
    if (!stopped && p < n) {
      // ahead: horizon_s, or longer when commits are slow (a busy machine), so that a frame
      // that follows a commit does not overrun the new front
      const ahead_s = Math.max(horizon_s, 5 * state.commit_s) * state.speed
      a = Math.floor(p)
      const ahead = Math.ceil(position_at(Math.min(total, time_at(p) + ahead_s)))
      b = Math.min(n, a + max_front, Math.max(a + 2, ahead + 1))
    }
    const changed = state.primary_stale || a !== win.a || b !== win.b
    win.a = a
    win.b = b
    const drawn = b > a && links != null ? links_in_front(a, b) : {own: [], crossing: []}
    win.links = drawn.own
    win.crossing = drawn.crossing
    // a main renderer whose filter changes reads its source again: tell the others
    const told = {segments: false, mass: false, links: false}
    if (has_front) {
      told.segments = set_indices(hidden, range(a, b))
      if (hidden_pieces != null) told.mass = set_indices(hidden_pieces, range(a * pieces, b * pieces))
      if (hidden_outline != null) {
        const outlined = b > a ? range(Math.max(0, a - 1), Math.min(n, b + 1)) : []
        told.segments = set_indices(hidden_outline, outlined) && told.segments
      }
      if (hidden_links != null) {
        told.links = set_indices(hidden_links, win.links.concat(win.crossing).sort((i, j) => i - j))
      }
    }
    if (state.primary_stale) {
      if (!told.segments) segments.change.emit()
      if (pieces > 0 && !told.mass) mass.change.emit()
      if (links != null && !told.links) links.change.emit()
      state.primary_stale = false
    }
    if (has_front && changed) fill_front()
    set_indices(segments.selected, [current])  // a page's table and lens follow (its callbacks)
    if (highlight != null) {
      // the main highlight shows the playhead's links when stopped; playing, the front's does
      highlight.__coilvis_playing = !stopped
      highlight.__coilvis_pos = stopped ? current : -1
      set_indices(highlight, stopped ? links_of(0, 0, current) : [])
      highlight.__coilvis_query = links != null ? links.data.query : null  // the arcs' script's cache (coil/arcs.py)
      highlight.__coilvis_set = highlight.indices
    }
    select(current)
    state.commits += 1
    state.commit_ms = stopped ? null : performance.now()
  }

  // The slider (a DOM widget) and the readout (a text widget, laid out again when it
  // changes) are the costly updates besides the main canvas: at most every THROTTLE_MS
  // while playing, and always when the playhead stops.
  const THROTTLE_MS = 250

  function render(p, force = true) {
    const old = state.progress
    state.progress = p
    const lo = Math.max(0, Math.floor(Math.min(old, p)) - 1)
    const hi = Math.min(n - 1, Math.ceil(Math.max(old, p)) + 1)
    let moved_lo = n, moved_hi = -1, moved_label = false
    for (let i = lo; i <= hi; i++) {
      const w = smoothstep(p - i)
      if (w !== weight[i]) {
        if (move(i, w)) moved_label = true
        moved_lo = Math.min(moved_lo, i)
        moved_hi = i
      }
    }
    if (moved_hi >= 0) state.primary_stale = true
    const current = Math.min(n - 1, Math.floor(p))
    const stopped = force || !state.playing
    const outside = moved_hi >= 0 && (moved_lo < win.a || moved_hi >= win.b)
    let committed = false
    if (stopped || outside || p > win.b || win.b === win.a) {
      committed = stopped ? state.primary_stale || win.b > win.a || current !== state.current : true
      if (committed) commit(p, stopped)
    } else {
      if (moved_hi >= 0) update_front(moved_lo, moved_hi)
      if (current !== state.current) select(current)
    }
    if (moved_label) labels.change.emit()
    const now = performance.now()
    const slow_due = force || now - state.slow_ms >= THROTTLE_MS
    if (committed || stopped) {
      playhead.data = {x: [d.x[current]], y: [d.y[current]]}  // set: a Bokeh server's copy follows
    } else {
      // moved in place each frame: told to the browser's renderer only, not sent to a server
      const ph = playhead.data
      ph.x[0] = d.x[current]
      ph.y[0] = d.y[current]
      playhead.change.emit()
    }
    if (current !== state.current) {
      state.current = current
      state.readout_stale = true
    }
    if (slow_due && state.readout_stale) {  // a text widget: re-laid out when it changes
      state.readout_stale = false
      const next = text_format.format(current, "next", {})
      const top = text_format.format(current, "topk", {})
      readout.text = "position " + current + " of " + (n - 1) + ":  " + text_format.format(current, "token", {}) +
        "\nnext:  " + next + "\n" + top
    }
    if (slow_due) {
      state.slow_ms = now
      // remember what we set: the slider's change callback may run later, and must not
      // mistake our own update for the user's scrub
      state.set_value = Math.round(p * 100) / 100
      scrub.value = state.set_value
    }
    state.renders += 1
  }

  function frame(now) {
    state.raf = null
    if (stale()) {  // the page got a new coil (a live explorer's new run): this one is done
      retire()
      return
    }
    state.frames += 1
    if (state.commit_ms != null) {  // how long the main canvas took after the last commit
      state.commit_s = 0.5 * state.commit_s + 0.5 * (performance.now() - state.commit_ms) / 1000
      state.commit_ms = null
    }
    if (!state.playing) return
    if (state.last_ms != null) state.t_s += ((now - state.last_ms) / 1000) * state.speed
    else if (state.t_s === 0) state.clock_ms = now  // the frame a run from the start begins at
    state.last_ms = now
    if (state.t_s >= total) {
      if (state.loop) {
        state.t_s = 0
      } else {
        state.t_s = total
        render(n)
        pause()
        return
      }
    }
    render(position_at(state.t_s), false)
    state.raf = requestAnimationFrame(frame)
  }

  function playing_label() {
    play.label = state.playing ? "❚❚ pause" : (state.t_s >= total ? "↻ replay" : "▶ play")
  }

  function start_playing() {
    if (state.t_s >= total) {
      state.t_s = 0
      render(0)
    }
    state.playing = true
    state.last_ms = null
    playing_label()
    if (state.raf == null) state.raf = requestAnimationFrame(frame)
  }

  function pause() {
    render(state.progress)  // bring the arcs and the slider up to date
    state.playing = false
    state.last_ms = null
    if (state.raf != null) {
      cancelAnimationFrame(state.raf)
      state.raf = null
    }
    playing_label()
  }

  function stale() {
    return segments.data !== d || segments.data.xs !== xs
  }

  function retire() {
    // stop without drawing: the sources hold another coil now
    state.playing = false
    if (state.raf != null) cancelAnimationFrame(state.raf)
    state.raf = null
    if (highlight != null) highlight.__coilvis_playing = false
    const sd = segments.data  // the new coil's playhead, at its start (a page's server may hold it already)
    if (sd.x != null && sd.x.length > 0) playhead.data = {x: [sd.x[0]], y: [sd.y[0]]}
  }

  return {
    state, position_at, time_at, render, stale, retire,
    dispatch(what) {
      if (what === "init") {
        render(0)
      } else if (what === "toggle") {
        if (state.playing) pause()
        else start_playing()
      } else if (what === "play") {
        start_playing()
      } else if (what === "pause") {
        pause()
      } else if (what === "restart") {
        state.t_s = 0
        render(0)
        start_playing()
      } else if (what === "scrub") {
        if (scrub.value === state.set_value) return
        state.t_s = time_at(scrub.value)
        state.last_ms = null
        render(scrub.value)
        playing_label()
      } else if (what === "speed") {
        state.speed = speed.value
      } else if (what === "loop") {
        state.loop = loop.active
      }
    },
  }
}

let controller = segments[NAME]
if (controller == null || controller.stale()) {
  if (controller != null) controller.retire()
  controller = make_controller()
  segments[NAME] = controller
}
controller.dispatch(cb_data.action)
