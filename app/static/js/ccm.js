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

  // What this script says by itself, in English; the page's own words (JSON in <body
  // data-words>, app/web/languages.py script_words) replace them.
  var SAID = {
    filesTooLarge: "These files are too large.",
    tooLarge: "What you sent is larger than this portal accepts.",
    tooMany: "Too many attempts. Wait a minute, then try again.",
    expired: "This form has expired. Reload the page and try again.",
    notFound: "Not found: it is no longer there, or it is not yours to see.",
    failed: "Something went wrong. Try again in a moment."
  };

  function say(key) {
    var given = {};
    try { given = JSON.parse(document.body.getAttribute("data-words") || "{}") || {}; } catch (error) { given = {}; }
    return typeof given[key] === "string" && given[key] ? given[key] : SAID[key];
  }

  // Refuse attachments over the portal's limit before they are uploaded, where the
  // browser can tell their size: the server checks again whatever happens here.
  function tooLarge(input) {
    var limit = Number(input.getAttribute("data-max-bytes"));
    var total = 0;
    Array.prototype.forEach.call(input.files || [], function (file) { total += file.size; });
    var error = input.form && input.form.querySelector("[data-size-error]");
    var over = limit > 0 && total > limit;
    input.setCustomValidity(over ? say("filesTooLarge") : "");
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
    var text = say(status === 413 ? "tooLarge" : status === 429 ? "tooMany"
      : status === 400 ? "expired" : status === 404 ? "notFound" : "failed");
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

// --- Rich text editor (compose and reply) -------------------------------------------
// The rich text editor of compose and reply: a toolbar over a contenteditable area, for
// bold, italic, lists, links and quotes. Our own rather than a library: pell (MIT, about
// 1 KB) is the nearest, but unreleased since 2019, without paste cleaning or a way out
// of a quote, and it would still need the textarea wiring and the text writer that are
// most of this section; Squire, Trix or Quill weigh many times the portal's own script.
//
// It only improves a <textarea data-rich="NAME" data-rich-html="..." data-rich-words="{...}">:
// when it runs, the textarea is hidden and keeps the editor's text (for the form's checks),
// and a hidden input NAME carries its HTML. Without script the textarea posts text as it
// always did. The toolbar's words come translated in data-rich-words (JSON, written by
// app/web/inbox/forms.py: editor_words); English stands in for any that is missing.
// The server never trusts this HTML: app/mail/sanitize.py cleans it as it cleans mail.
(function () {
  "use strict";

  // What the toolbar makes, and so all a paste keeps (the server's allowlist is the same).
  var KEPT = {B: "b", STRONG: "b", I: "i", EM: "i", UL: "ul", OL: "ol", LI: "li",
    BLOCKQUOTE: "blockquote", P: "div", DIV: "div", BR: "br", A: "a",
    // an address or date set apart in the quote's line keeps its order in any direction
    BDI: "bdi"};
  // Dropped with everything inside them; any other element leaves its text alone.
  var DROPPED = /^(SCRIPT|STYLE|TEMPLATE|TITLE|HEAD|NOSCRIPT|IFRAME|OBJECT|EMBED|SVG|MATH|TEXTAREA|SELECT|BUTTON|INPUT|IMG|VIDEO|AUDIO|CANVAS)$/;
  var SAFE_LINK = /^(https?:\/\/|mailto:)/i;

  // Copy ``source``'s children into ``target`` keeping only the allowlist, with no
  // attribute but a safe link's address.
  function copyClean(source, target) {
    Array.prototype.forEach.call(source.childNodes, function (node) {
      if (node.nodeType === 3) {
        target.appendChild(document.createTextNode(node.nodeValue));
      } else if (node.nodeType === 1) {
        var name = node.nodeName.toUpperCase();
        if (DROPPED.test(name)) { return; }
        if (!KEPT[name]) { copyClean(node, target); return; }
        var element = document.createElement(KEPT[name]);
        if (name === "A") {
          var href = (node.getAttribute("href") || "").trim();
          if (!SAFE_LINK.test(href)) { copyClean(node, target); return; }
          element.setAttribute("href", href);
        }
        copyClean(node, element);
        target.appendChild(element);
      }
    });
    return target;
  }

  // A document of its own, with no window: nothing in it loads or runs.
  var inert = document.implementation.createHTMLDocument("");
  // It shares the page's CSP, which would report (and block) every inline style and
  // handler the paste carries: they are dropped from the tags first, to keep it quiet.
  var TAG = /<[^<>]*>/g;
  var NOISY = /\s(?:on[a-z]+|style)\s*=\s*(?:"[^"]*"|'[^']*'|[^\s>]*)/gi;

  function cleanHtml(html) {
    var box = inert.createElement("div");
    box.innerHTML = html.replace(TAG, function (tag) { return tag.replace(NOISY, " "); });
    return copyClean(box, document.createElement("div")).innerHTML;
  }

  function escapeText(text) {
    var box = document.createElement("div");
    box.textContent = text;
    return box.innerHTML;
  }

  // A plain text as the editor shows it: a line per block, "> " lines as a quote.
  function textToHtml(text) {
    var out = [], quote = [];
    function endQuote() {
      if (quote.length) { out.push("<blockquote>" + quote.join("<br>") + "</blockquote>"); }
      quote = [];
    }
    text.replace(/\r\n?/g, "\n").split("\n").forEach(function (line) {
      if (/^>/.test(line)) { quote.push(escapeText(line.replace(/^> ?/, ""))); return; }
      endQuote();
      out.push("<div>" + (line ? escapeText(line) : "<br>") + "</div>");
    });
    endQuote();
    return out.join("");
  }

  // The editor's plain text, written as app/mail/rich_text.py writes the text part
  // (the server makes its own from the cleaned HTML; this one is for the textarea).
  var BLOCK = /^(DIV|P|UL|OL|LI|BLOCKQUOTE)$/;

  function inlineText(node) {
    if (node.nodeType === 3) { return node.nodeValue.replace(/[ \t\r\n\f]+/g, " ").replace(/\u00a0/g, " "); }
    if (node.nodeType !== 1) { return ""; }
    if (node.nodeName === "BR") { return "\n"; }
    var text = Array.prototype.map.call(node.childNodes, inlineText).join("");
    var href = node.nodeName === "A" ? (node.getAttribute("href") || "").trim() : "";
    if (!href) { return text; }
    var words = text.split(/\s+/).filter(Boolean).join(" ");
    if (!words) { return href; }
    return (href === words || href === "mailto:" + words) ? words : words + " <" + href + ">";
  }

  function linesOf(children) {
    var lines = [], inline = [];
    function flush() {
      if (!inline.length) { return; }
      inline.join("").replace(/\n$/, "").split("\n").forEach(function (line) {
        lines.push(line.replace(/^ +| +$/g, ""));
      });
      inline = [];
    }
    Array.prototype.forEach.call(children, function (child) {
      if (child.nodeType !== 1 || !BLOCK.test(child.nodeName)) { inline.push(inlineText(child)); return; }
      flush();
      lines = lines.concat(blockLines(child));
    });
    flush();
    return lines;
  }

  function blockLines(node) {
    var inner, found = [];
    if (node.nodeName === "UL" || node.nodeName === "OL") {
      var number = 1;
      Array.prototype.forEach.call(node.childNodes, function (child) {
        if (child.nodeName === "LI") {
          var marker = node.nodeName === "UL" ? "- " : (number++) + ". ";
          inner = linesOf(child.childNodes);
          if (!inner.length) { inner = [""]; }
          found.push(marker + inner[0]);
          inner.slice(1).forEach(function (line) {
            found.push(line ? new Array(marker.length + 1).join(" ") + line : "");
          });
        } else if (child.nodeType === 1 || child.nodeValue.trim()) {
          found = found.concat(linesOf([child]));
        }
      });
      return found;
    }
    if (node.nodeName === "LI") {
      inner = linesOf(node.childNodes);
      return inner.length ? ["- " + inner[0]].concat(inner.slice(1)) : ["- "];
    }
    if (node.nodeName === "BLOCKQUOTE") {
      inner = linesOf(node.childNodes);
      while (inner.length && !inner[0]) { inner.shift(); }
      while (inner.length && !inner[inner.length - 1]) { inner.pop(); }
      return inner.map(function (line) { return line && line[0] !== ">" ? "> " + line : ">" + line; });
    }
    inner = linesOf(node.childNodes);
    return node.nodeName === "P" ? inner.concat([""]) : inner;
  }

  function textOf(area) {
    return linesOf(area.childNodes).join("\n").replace(/\n{3,}/g, "\n\n").replace(/^\n+|\n+$/g, "");
  }

  function closest(node, name, root) {
    for (; node && node !== root; node = node.parentNode) {
      if (node.nodeName === name) { return node; }
    }
    return null;
  }

  // The toolbar's words in English; the page's own (data-rich-words) replace them.
  var ENGLISH = {
    toolbar: "Formatting",
    bold: "Bold", boldText: "B",
    italic: "Italic", italicText: "I",
    insertUnorderedList: "Bulleted list", insertUnorderedListText: "• List",
    insertOrderedList: "1. List, numbered", insertOrderedListText: "1. List",
    link: "Link", linkText: "Link",
    quote: "Quote", quoteText: "❝ Quote",
    linkPrompt: "Link address (https://… or mailto:…)",
    linkRefused: "A link must start with https://, http:// or mailto:."
  };
  var BUTTONS = ["bold", "italic", "insertUnorderedList", "insertOrderedList", "link", "quote"];

  function wordsOf(textarea) {
    var given = {};
    try { given = JSON.parse(textarea.getAttribute("data-rich-words") || "{}") || {}; } catch (error) { given = {}; }
    var words = {};
    Object.keys(ENGLISH).forEach(function (key) {
      words[key] = typeof given[key] === "string" && given[key] ? given[key] : ENGLISH[key];
    });
    return words;
  }

  function enhance(textarea) {
    if (textarea.getAttribute("data-rich-ready")) { return; }
    textarea.setAttribute("data-rich-ready", "1");
    var words = wordsOf(textarea);
    var wrapper = document.createElement("div");
    wrapper.className = "rich-editor";
    var toolbar = document.createElement("div");
    toolbar.className = "rich-toolbar";
    toolbar.setAttribute("role", "toolbar");
    toolbar.setAttribute("aria-label", words.toolbar);
    var area = document.createElement("div");
    area.className = "rich-area";
    area.contentEditable = "true";
    area.setAttribute("role", "textbox");
    area.setAttribute("aria-multiline", "true");
    area.setAttribute("data-rich-area", "");
    var label = textarea.id && document.querySelector("label[for='" + textarea.id + "']");
    if (label) {
      label.id = label.id || textarea.id + "-label";
      area.setAttribute("aria-labelledby", label.id);
      // The label names the editor now, not the hidden textarea; its click focuses it.
      label.removeAttribute("for");
      label.addEventListener("click", function (event) { event.preventDefault(); area.focus(); });
    }
    ["aria-describedby", "aria-invalid", "dir"].forEach(function (name) {
      if (textarea.hasAttribute(name)) { area.setAttribute(name, textarea.getAttribute(name)); }
    });
    var field = document.createElement("input");
    field.type = "hidden";
    field.name = textarea.getAttribute("data-rich");
    var start = textarea.getAttribute("data-rich-html");
    area.innerHTML = start ? cleanHtml(start) : textToHtml(textarea.value);
    if (!area.innerHTML) { area.innerHTML = "<div><br></div>"; }

    BUTTONS.forEach(function (name) {
      var button = document.createElement("button");
      button.type = "button";
      button.className = "rich-button rich-" + name;
      button.textContent = words[name + "Text"];
      button.title = words[name];
      button.setAttribute("aria-label", words[name]);
      button.setAttribute("data-command", name);
      if (name === "bold" || name === "italic") {
        button.setAttribute("aria-pressed", "false");
      }
      // Keep the selection in the editor: a click would otherwise move focus first.
      button.addEventListener("mousedown", function (event) { event.preventDefault(); });
      button.addEventListener("click", function () { run(name); });
      toolbar.appendChild(button);
    });

    function sync() {
      field.value = area.innerHTML;
      var text = textOf(area);
      if (textarea.value !== text) {
        textarea.value = text;
        // Tell the form (the draft's autosave listens for input there) something changed.
        textarea.dispatchEvent(new Event("input", {bubbles: true}));
      }
    }

    function pressed() {
      ["bold", "italic"].forEach(function (name) {
        var button = toolbar.querySelector("[data-command='" + name + "']");
        var on = false;
        try { on = document.queryCommandState(name); } catch (error) { on = false; }
        button.setAttribute("aria-pressed", on ? "true" : "false");
      });
    }

    function insert(html) {
      area.focus();
      document.execCommand("insertHTML", false, html);
    }

    function run(name) {
      area.focus();
      try { document.execCommand("styleWithCSS", false, false); } catch (error) { /* old engine */ }
      if (name === "link") {
        var address = window.prompt(words.linkPrompt, "https://");
        if (address === null) { return; }
        address = address.trim();
        if (!SAFE_LINK.test(address)) {
          window.alert(words.linkRefused);
          return;
        }
        var selection = window.getSelection();
        if (selection && !selection.isCollapsed) {
          document.execCommand("createLink", false, address);
        } else {
          var text = escapeText(address.replace(/^mailto:/i, ""));
          insert("<a href=\"" + escapeText(address).replace(/"/g, "&quot;") + "\">" + text + "</a>&nbsp;");
        }
      } else if (name === "quote") {
        var found = closest(window.getSelection().anchorNode, "BLOCKQUOTE", area);
        if (found) {  // a second press takes the quote away again
          while (found.firstChild) { found.parentNode.insertBefore(found.firstChild, found); }
          found.parentNode.removeChild(found);
        } else {
          document.execCommand("formatBlock", false, "blockquote");
        }
      } else {
        document.execCommand(name, false, null);
      }
      sync();
      pressed();
    }

    // A paste or a drop keeps only what the toolbar could have made.
    function take(event, data) {
      if (!data) { return; }
      event.preventDefault();
      var html = data.getData("text/html");
      if (html) {
        insert(cleanHtml(html));
      } else {
        insert(escapeText(data.getData("text/plain")).replace(/\r?\n/g, "<br>"));
      }
      sync();
    }
    area.addEventListener("paste", function (event) { take(event, event.clipboardData); });
    area.addEventListener("drop", function (event) { take(event, event.dataTransfer); });
    area.addEventListener("input", sync);
    area.addEventListener("keyup", pressed);
    area.addEventListener("mouseup", pressed);

    wrapper.appendChild(toolbar);
    wrapper.appendChild(area);
    wrapper.appendChild(field);
    textarea.parentNode.insertBefore(wrapper, textarea.nextSibling);
    textarea.hidden = true;
    // Written back without an input event: loading a page has not changed a draft.
    field.value = area.innerHTML;
    textarea.value = textOf(area);
    if (textarea.hasAttribute("autofocus")) { area.focus(); }
  }

  function enhanceAll(root) {
    if (!root.querySelectorAll) { return; }
    var found = Array.prototype.slice.call(root.querySelectorAll("textarea[data-rich]"));
    if (root.matches && root.matches("textarea[data-rich]")) { found.push(root); }
    found.forEach(enhance);
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", function () { enhanceAll(document); });
  } else {
    enhanceAll(document);
  }
  document.addEventListener("htmx:load", function (event) { enhanceAll(event.detail.elt); });
})();
