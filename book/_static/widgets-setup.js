// Loaded between require.js and the Jupyter widgets embed bundle on pages with widgets
// (nb_ipywidgets_js in _config.yml). The site is served offline, so everything stays local.

// 1. The bundle finds its own files (fonts) relative to its RequireJS module path: make that path
//    the folder the bundle is served from, _static/widgets/, instead of the page's folder.
(function () {
  var here = document.currentScript.src.replace(/[^/]*$/, "");
  window.require.config({ baseUrl: here + "widgets/" });
})();

// 2. The bundle typesets widget labels with the MathJax 2 API (MathJax.Hub.Queue); the site loads
//    MathJax 3. Translate the call once MathJax 3 has started (deferred scripts run before this event).
document.addEventListener("DOMContentLoaded", function () {
  var mathjax = window.MathJax;
  if (!mathjax || mathjax.Hub || !mathjax.startup) {
    return;
  }
  mathjax.Hub = {
    Queue: function (job) {
      var element = job && job[2];
      if (element) {
        mathjax.startup.promise
          .then(function () { return mathjax.typesetPromise([element]); })
          .catch(function (error) { console.warn("MathJax could not typeset a widget label:", error); });
      }
    },
  };
});
