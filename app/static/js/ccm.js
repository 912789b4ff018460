// The portal's own script: the little htmx does not do. No inline script anywhere.
(function () {
  "use strict";

  // Size a message's sandboxed body frame to its content, so the page scrolls as one.
  function fit(frame) {
    try {
      var doc = frame.contentDocument;
      if (doc && doc.documentElement) {
        frame.style.height = (doc.documentElement.scrollHeight + 8) + "px";
      }
    } catch (error) {
      // Not readable (another origin): keep the stylesheet's height.
    }
  }

  document.addEventListener("load", function (event) {
    var target = event.target;
    if (target && target.classList && target.classList.contains("message-frame")) {
      fit(target);
    }
  }, true);

  window.addEventListener("resize", function () {
    document.querySelectorAll("iframe.message-frame").forEach(fit);
  });
})();
