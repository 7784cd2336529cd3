// Marks the page for automated checks: <body data-rendered="ok"> once every
// image has decoded and no script error or Content-Security-Policy
// violation (a blocked request) occurred; "failed" and the reasons in
// data-errors otherwise.
(function () {
  var errors = [];
  window.addEventListener('error', function (e) {
    var t = e.target;
    errors.push(t && t.tagName ? 'failed to load ' + t.tagName.toLowerCase() : String(e.message));
  }, true);
  document.addEventListener('securitypolicyviolation', function (e) {
    errors.push('blocked by the page policy: ' + e.violatedDirective + ' ' + e.blockedURI);
  });
  function check() {
    var images = document.images, bad = 0;
    for (var i = 0; i < images.length; i++) {
      if (!images[i].complete || images[i].naturalWidth === 0) { bad++; }
    }
    if (bad > 0) { errors.push(bad + ' image(s) did not decode'); }
    var charts = document.querySelectorAll('figure.chart').length;
    var drawn = document.querySelectorAll('figure.chart canvas').length;
    if (drawn !== charts) { errors.push((charts - drawn) + ' chart(s) not drawn'); }
    document.body.dataset.images = String(images.length);
    document.body.dataset.tables = String(document.querySelectorAll('table:not(.u-legend)').length);
    document.body.dataset.errors = errors.join('; ');
    document.body.dataset.rendered = errors.length === 0 ? 'ok' : 'failed';
  }
  if (document.readyState === 'complete') { check(); } else { window.addEventListener('load', check); }
})();
