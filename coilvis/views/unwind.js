// coilvis: the unwind animation of a coil.
//
// The body of a Bokeh CustomJS callback. Every control of the unwind calls it with its own
// `action` ("init", "toggle", "restart", "scrub", "speed", "loop"); the first call builds
// one controller, kept on the segment source, which later calls reuse.
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
//   action       what this call does
//
// Each frame only the segments whose unwind weight changed are moved, then the glyphs are
// told their data changed. The blend is coilvis.geometry.unwind's, with front_width 1: the
// weight smoothstep(progress - i), the centre linear, the angle by the shortest turn, the
// polygon and the arc anchor carried in the segment's own frame, the label angle by the
// shortest turn between upright angles; the mass rings are cut from the moving segment at
// radial bounds blended by the same weight. The Python is the reference: tests/test_unwind.py
// runs this file in headless Chromium and checks segments, labels, anchors, arcs and the
// playhead against coilvis.geometry.unwind_positions / unwind_anchors / bent_arcs at
// playhead positions between the coil and the rows (tests/test_coil_mass.py the rings
// against coilvis.geometry.unwind_shares).

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
    loop: loop.active, current: -1, frames: 0, renders: 0, raf: null, set_value: 0,
    slow_ms: -Infinity, links_stale: false, readout_stale: false,
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

  // Arcs (every link re-reads its anchors) and the slider (a DOM widget) are the costly
  // updates: at most every THROTTLE_MS while playing, and always when the playhead stops.
  const THROTTLE_MS = 100

  function render(p, force = true) {
    const old = state.progress
    state.progress = p
    const lo = Math.max(0, Math.floor(Math.min(old, p)) - 1)
    const hi = Math.min(n - 1, Math.ceil(Math.max(old, p)) + 1)
    let moved = false, moved_label = false
    for (let i = lo; i <= hi; i++) {
      const w = smoothstep(p - i)
      if (w !== weight[i]) {
        moved = true
        if (move(i, w)) moved_label = true
      }
    }
    const current = Math.min(n - 1, Math.floor(p))
    const now = performance.now()
    const slow_due = force || now - state.slow_ms >= THROTTLE_MS
    if (moved) {
      segments.change.emit()
      if (pieces > 0) mass.change.emit()
      if (moved_label) labels.change.emit()
      state.links_stale = true
    }
    if (slow_due && state.links_stale) {
      if (links != null) links.change.emit()
      state.links_stale = false
    }
    playhead.data = {x: [d.x[current]], y: [d.y[current]]}
    if (current !== state.current) {
      state.current = current
      segments.selected.indices = [current]
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
    state.frames += 1
    if (!state.playing) return
    if (state.last_ms != null) state.t_s += ((now - state.last_ms) / 1000) * state.speed
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

  return {
    state, position_at, time_at, render,
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
if (controller == null) {
  controller = make_controller()
  segments[NAME] = controller
}
controller.dispatch(action)
