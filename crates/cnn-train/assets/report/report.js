// cnn's interactive charts in report.html, drawn with uPlot (vendored in
// crates/cnn-train/assets/uplot). The page's data is the JSON in
// <script id="cnn-report-data" type="application/json">: a list of charts,
// each an x axis and its series. Every chart gets: values in the legend at
// the cursor (hover), drag to zoom on x (double-click resets), a click on
// a legend entry hides or shows its series, a log/linear switch for y (and
// x where the chart allows it), and, for per-step curves, a smoothing
// slider: TensorBoard's exponential moving average with its debiasing,
// drawn over the raw curve in a faint colour.
(function () {
  'use strict';

  // The PNG figures' colours (plot/chart.rs PALETTE), in the same order.
  var PALETTE = ['#1f77b4', '#ff7f0e', '#2ca02c', '#d62728', '#9467bd',
    '#8c564b', '#e377c2', '#7f7f7f', '#bcbd22', '#17becf'];
  var DEFAULT_SMOOTHING = 0.6;
  var WHOLE = [1, 2, 5, 10, 20, 25, 50, 100, 200, 250, 500, 1000, 2000, 2500, 5000,
    1e4, 2e4, 2.5e4, 5e4, 1e5, 2e5, 2.5e5, 5e5, 1e6, 2e6, 5e6, 1e7];

  // TensorBoard's smoothing (tensorboard/components/vz_line_chart2):
  // last = last * w + (1 - w) * y, divided by 1 - w^n (the debiasing of an
  // average started at 0); a non-finite value passes through unchanged and
  // does not count; a constant series is left as it is.
  function smooth(values, weight) {
    var first = null;
    var constant = values.every(function (v) {
      if (first === null) { first = v; }
      return v === first;
    });
    var last = 0;
    var n = 0;
    return values.map(function (v) {
      if (constant || v === null || !isFinite(v)) { return v; }
      last = last * weight + (1 - weight) * v;
      n += 1;
      var debias = weight === 1 ? 1 : 1 - Math.pow(weight, n);
      return last / debias;
    });
  }

  function format(v) {
    if (v === null || v === undefined || !isFinite(v)) { return '—'; }
    var a = Math.abs(v);
    if (a !== 0 && (a < 1e-3 || a >= 1e5)) { return v.toExponential(3); }
    return String(Number(v.toPrecision(5)));
  }

  function positiveOnly(values) {
    return values.map(function (v) { return v !== null && v > 0 ? v : null; });
  }

  // The drawn series of a chart: [x, s1, s2, ...]; a smoothed series is two
  // drawn series, the raw one (faint) and the smoothed one.
  function drawn(state) {
    var spec = state.spec;
    var x = state.logX ? positiveOnly(spec.x) : spec.x.slice();
    var data = [x];
    var series = [{ label: spec.x_label }];
    spec.series.forEach(function (s, i) {
      var colour = PALETTE[i % PALETTE.length];
      var values = s.values;
      var y = function (v) { return state.logY ? positiveOnly(v) : v; };
      if (s.smooth) {
        data.push(y(values));
        series.push({ label: s.label + ' (raw)', stroke: colour + '40', width: 1, value: valueOf });
        data.push(y(smooth(values, state.weight)));
        series.push({ label: s.label, stroke: colour, width: 2, value: valueOf });
      } else {
        data.push(y(values));
        series.push({ label: s.label, stroke: colour, width: 2, value: valueOf,
          dash: s.dashed ? [6, 4] : undefined, points: { show: spec.x.length <= 60 } });
      }
    });
    return { data: data, series: series };
  }

  function valueOf(u, v) { return format(v); }

  function build(state) {
    var old = state.plot;
    var shown = old ? old.series.map(function (s) { return s.show; }) : null;
    var d = drawn(state);
    if (shown) {
      d.series.forEach(function (s, i) { s.show = shown[i] !== false; });
    }
    var width = Math.max(320, state.box.clientWidth || 900);
    var opts = {
      width: width,
      height: 300,
      series: d.series,
      scales: {
        x: { time: false, distr: state.logX ? 3 : 1, log: 10 },
        y: { distr: state.logY ? 3 : 1, log: 10 }
      },
      axes: [
        // Steps, epochs and image counts are whole numbers: whole ticks.
        { label: state.spec.x_label, incrs: WHOLE, values: function (u, ticks) { return ticks.map(format); } },
        { label: state.spec.y_label, size: 70, values: function (u, ticks) { return ticks.map(format); } }
      ],
      cursor: { drag: { x: true, y: false } },
      legend: { live: true }
    };
    if (old) { old.destroy(); }
    state.plot = new uPlot(opts, d.data, state.box);
  }

  function control(parent, html) {
    var label = document.createElement('label');
    label.innerHTML = html;
    parent.appendChild(label);
    return label.querySelector('input');
  }

  function chart(container, spec) {
    var controls = document.createElement('div');
    controls.className = 'chart-controls';
    container.appendChild(controls);
    var box = document.createElement('div');
    box.className = 'chart-plot';
    container.appendChild(box);
    var state = { spec: spec, box: box, weight: DEFAULT_SMOOTHING, logY: !!spec.log_y,
      logX: false, plot: null };
    if (spec.series.some(function (s) { return s.smooth; })) {
      var slider = control(controls, 'smoothing <input type="range" class="smoothing" min="0" max="0.99" step="0.01"> <output></output>');
      var out = controls.querySelector('output');
      slider.value = String(DEFAULT_SMOOTHING);
      out.textContent = slider.value;
      slider.addEventListener('input', function () {
        state.weight = Number(slider.value);
        out.textContent = slider.value;
        state.plot.setData(drawn(state).data);
      });
    }
    var logY = control(controls, '<input type="checkbox" class="log-y"> log y');
    logY.checked = state.logY;
    logY.addEventListener('change', function () { state.logY = logY.checked; build(state); });
    if (spec.log_x_option) {
      var logX = control(controls, '<input type="checkbox" class="log-x"> log x');
      logX.addEventListener('change', function () { state.logX = logX.checked; build(state); });
    }
    build(state);
    return state;
  }

  var source = document.getElementById('cnn-report-data');
  var data = JSON.parse(source.textContent);
  var charts = {};
  data.charts.forEach(function (spec) {
    var container = document.getElementById('chart-' + spec.id);
    if (container) { charts[spec.id] = chart(container, spec); }
  });
  window.cnnReport = { charts: charts, smooth: smooth };
  document.body.dataset.charts = String(Object.keys(charts).length);
})();
