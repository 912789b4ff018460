// The portal's own script: the little htmx does not do. No inline script anywhere.
(function () {
  "use strict";

  // Size a message's sandboxed body frame to its content, so the page scrolls as one.
  function fit(frame) {
    try {
      var doc = frame.contentDocument;
      if (doc && doc.documentElement) {
        // The content's own height: scrollHeight is never less than the frame's, so a
        // frame grown on a narrow window would not shrink when the window widens.
        var height = Math.ceil(doc.documentElement.getBoundingClientRect().height);
        frame.style.height = (height + 8) + "px";
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

  // Refuse attachments over the portal's limit before they are uploaded, where the
  // browser can tell their size: the server checks again whatever happens here.
  function tooLarge(input) {
    var limit = Number(input.getAttribute("data-max-bytes"));
    var total = 0;
    Array.prototype.forEach.call(input.files || [], function (file) { total += file.size; });
    var error = input.form && input.form.querySelector("[data-size-error]");
    var over = limit > 0 && total > limit;
    input.setCustomValidity(over ? "These files are too large." : "");
    if (error) { error.hidden = !over; }
    return over;
  }

  document.addEventListener("change", function (event) {
    if (event.target.matches && event.target.matches("input[type=file][data-max-bytes]")) {
      tooLarge(event.target);
    }
  });

  document.addEventListener("submit", function (event) {
    var inputs = event.target.querySelectorAll("input[type=file][data-max-bytes]");
    Array.prototype.forEach.call(inputs, function (input) {
      if (tooLarge(input)) { event.preventDefault(); event.stopPropagation(); input.focus(); }
    });
  }, true);

  // After a page-sized swap, move focus to the new heading so keyboard and screen
  // reader users start at the top of what changed (the link they used is gone).
  document.addEventListener("htmx:afterSwap", function (event) {
    if (event.detail.target && event.detail.target.id === "main") {
      var heading = event.detail.target.querySelector("h1");
      if (heading) { heading.setAttribute("tabindex", "-1"); heading.focus(); }
    }
  });

  // htmx does not swap error answers: say what happened instead of doing nothing.
  document.addEventListener("htmx:responseError", function (event) {
    var status = event.detail.xhr.status;
    var text = status === 413 ? "What you sent is larger than this portal accepts."
      : status === 429 ? "Too many attempts. Wait a minute, then try again."
      : status === 400 ? "This form has expired. Reload the page and try again."
      : status === 404 ? "Not found: it is no longer there, or it is not yours to see."
      : "Something went wrong. Try again in a moment.";
    var box = document.getElementById("request-error");
    if (box) { box.textContent = text; box.hidden = false; }
  });

  // hx-confirm on a plain form (no htmx request of its own) still asks first.
  document.addEventListener("submit", function (event) {
    var form = event.target;
    var question = form.getAttribute && form.getAttribute("hx-confirm");
    if (question && !form.hasAttribute("hx-post") && !window.confirm(question)) {
      event.preventDefault();
    }
  });

  // A request that went well clears the error a previous one left.
  document.addEventListener("htmx:afterRequest", function (event) {
    var box = document.getElementById("request-error");
    if (box && event.detail.successful) { box.hidden = true; }
  });

  // Times: the server writes them in the tenant's zone (app/web/filters.py); here they
  // are rewritten into the browser's own, with its name. data-style names the same
  // styles as the server's STYLES; the datetime attribute is the moment in UTC.
  var STYLES = {
    date: {day: "2-digit", month: "long", year: "numeric"},
    day: {day: "2-digit", month: "short"},
    minute: {day: "2-digit", month: "short", year: "numeric", hour: "2-digit", minute: "2-digit", timeZoneName: "short"},
    second: {day: "2-digit", month: "short", year: "numeric", hour: "2-digit", minute: "2-digit", second: "2-digit", timeZoneName: "short"},
    "short": {day: "2-digit", month: "short", hour: "2-digit", minute: "2-digit", timeZoneName: "short"},
    time: {hour: "2-digit", minute: "2-digit", second: "2-digit", timeZoneName: "short"}
  };
  var formats = {};

  // Written as the server writes them (day, month, 24 hours): only the zone changes.
  // In the page's language (<html lang>), with the Latin digits the server writes too.
  var PAGE_LANG = document.documentElement.lang || "en";
  var LOCALE = PAGE_LANG === "en" ? "en-GB" : PAGE_LANG + "-u-nu-latn";

  function localTimes(root) {
    if (!window.Intl || !root.querySelectorAll) { return; }
    var times = Array.prototype.slice.call(root.querySelectorAll("time[datetime][data-style]"));
    if (root.matches && root.matches("time[datetime][data-style]")) { times.push(root); }
    times.forEach(function (element) {
      var style = element.getAttribute("data-style");
      var moment = new Date(element.getAttribute("datetime"));
      if (!STYLES[style] || isNaN(moment.getTime())) { return; }
      try {
        formats[style] = formats[style] || new Intl.DateTimeFormat(LOCALE, STYLES[style]);
        element.textContent = formats[style].format(moment);
        element.setAttribute("data-zone", formats[style].resolvedOptions().timeZone);
        element.title = formats[style].resolvedOptions().timeZone;
      } catch (error) {
        // An engine without these options: the server's text stays.
      }
    });
  }

  localTimes(document);
  document.addEventListener("htmx:load", function (event) { localTimes(event.detail.elt); });

  window.addEventListener("resize", function () {
    document.querySelectorAll("iframe.message-frame").forEach(fit);
  });
})();
