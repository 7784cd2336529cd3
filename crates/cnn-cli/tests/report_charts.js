// Test harness for report_browser.rs, appended to a copy of report.html
// (never part of a report). It drives every chart the way a user would,
// with the DOM events uPlot and the chart controls listen to, and writes
// what it saw as JSON into <pre id="harness-result">; Chromium's
// --dump-dom (with a virtual-time budget, so the awaited timers run)
// returns it to the test.
(async function () {
  var result = { errors: [], charts: {}, smooth: null, resources: -1, csp: [] };
  document.addEventListener('securitypolicyviolation', function (e) {
    result.csp.push(e.violatedDirective + ' ' + e.blockedURI);
  });
  function tick() { return new Promise(function (r) { setTimeout(r, 50); }); }
  // A signature of the pixels of a chart's canvas.
  function sig(u) {
    var c = u.ctx.canvas;
    var d = u.ctx.getImageData(0, 0, c.width, c.height).data;
    var h = 0, lit = 0;
    for (var i = 0; i < d.length; i += 4) {
      if (d[i + 3] !== 0) {
        lit++;
        h = (h * 31 + d[i] * 7 + d[i + 1] * 13 + d[i + 2] * 17 + d[i + 3] + (i >> 2)) % 2147483647;
      }
    }
    return h + ':' + lit;
  }
  function mouse(target, type, x, y, extra) {
    var init = { bubbles: true, cancelable: true, clientX: x, clientY: y, button: 0, buttons: 1, movementX: 0, movementY: 0, view: window };
    for (var k in extra || {}) { init[k] = extra[k]; }
    target.dispatchEvent(new MouseEvent(type, init));
  }
  function finite(values) { return values.some(function (v) { return v !== null && isFinite(v); }); }
  try {
    await tick();
    var report = window.cnnReport;
    result.smooth = report.smooth([1, 2, null, 4, 8, 0.5], 0.6);
    for (var id in report.charts) {
      var state = report.charts[id];
      var u = state.plot;
      var r = { series: u.series.length - 1, finite: [], hides: [], restores: [],
        labels: u.series.slice(1).map(function (s) { return s.label; }) };
      result.charts[id] = r;
      var base = sig(u);
      r.lit = Number(base.split(':')[1]);
      // Legend toggle: each series hidden by a click on its legend entry
      // changes the drawing, and a second click brings it back.
      var rows = u.root.querySelectorAll('.u-legend .u-series');
      for (var i = 1; i < u.series.length; i++) {
        r.finite.push(finite(u.data[i]));
        rows[i].querySelector('th').click();
        await tick();
        r.hides.push(u.series[i].show === false && sig(u) !== base);
        rows[i].querySelector('th').click();
        await tick();
        r.restores.push(u.series[i].show === true && sig(u) === base);
      }
      // Hover: the legend shows the values at the cursor.
      var over = u.over.getBoundingClientRect();
      var cx = over.left + over.width / 2, cy = over.top + over.height / 2;
      mouse(u.over, 'mouseenter', cx, cy);
      mouse(u.over, 'mousemove', cx, cy, { buttons: 0, movementX: 3 });
      await tick();
      r.hover_idx = u.cursor.idx;
      r.hover_values = Array.prototype.slice.call(rows, 1).map(function (row) {
        return row.querySelector('.u-value').textContent;
      });
      // Zoom: drag over the middle half, then double-click to reset.
      var x0 = [u.scales.x.min, u.scales.x.max];
      mouse(u.over, 'mousedown', over.left + over.width * 0.25, cy);
      mouse(u.over, 'mousemove', over.left + over.width * 0.5, cy, { movementX: 5 });
      mouse(u.over, 'mousemove', over.left + over.width * 0.75, cy, { movementX: 5 });
      mouse(document, 'mouseup', over.left + over.width * 0.75, cy, { buttons: 0 });
      await tick();
      r.zoomed = u.scales.x.min > x0[0] && u.scales.x.max < x0[1];
      mouse(u.over, 'dblclick', cx, cy, { buttons: 0 });
      await tick();
      r.unzoomed = u.scales.x.min === x0[0] && u.scales.x.max === x0[1];
      mouse(u.over, 'mouseleave', cx, cy, { buttons: 0 });
      await tick();
      // Smoothing: moving the slider changes the smoothed series and the
      // drawing.
      var slider = state.box.parentNode.querySelector('input.smoothing');
      r.has_slider = !!slider;
      if (slider) {
        var before = sig(u);
        slider.value = '0.95';
        slider.dispatchEvent(new Event('input', { bubbles: true }));
        await tick();
        r.smoothing_redraws = sig(u) !== before;
        r.smoothed = state.plot.data[2].slice();
        r.raw = state.plot.data[1].slice();
      }
      // Log/linear switch for y, and back.
      var logY = state.box.parentNode.querySelector('input.log-y');
      var beforeLog = sig(state.plot);
      logY.click();
      await tick();
      r.log_y = state.plot.scales.y.distr === 3 && sig(state.plot) !== beforeLog;
      logY.click();
      await tick();
      r.linear_again = state.plot.scales.y.distr === 1;
      var logX = state.box.parentNode.querySelector('input.log-x');
      r.has_log_x = !!logX;
      if (logX) {
        logX.click();
        await tick();
        r.log_x = state.plot.scales.x.distr === 3;
      }
    }
  } catch (e) {
    result.errors.push(String(e && e.stack || e));
  }
  result.resources = performance.getEntriesByType('resource').length;
  result.rendered = document.body.dataset.rendered;
  result.page_errors = document.body.dataset.errors;
  var pre = document.createElement('pre');
  pre.id = 'harness-result';
  pre.textContent = JSON.stringify(result);
  document.body.appendChild(pre);
})();
