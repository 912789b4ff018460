// Passkeys (WebAuthn): creating one on the Security page, and signing in with one, by
// the button or by the browser's own offer in the email field (conditional mediation).
// Loaded by the pages that offer passkeys (sign-in, Security, Passkeys), not by every page.
// The server (app/web/auth/passkeys.py) gives the options and checks every answer; the
// words shown come from the page's data- attributes, already in the reader's language.
(function () {
  "use strict";

  var supported = !!(window.PublicKeyCredential && navigator.credentials);

  // --- base64url, as the server writes binary fields, to and from ArrayBuffer ---------

  function toBuffer(text) {
    var base64 = text.replace(/-/g, "+").replace(/_/g, "/");
    base64 += "====".slice((base64.length + 3) % 4 + 1);
    var binary = atob(base64);
    var bytes = new Uint8Array(binary.length);
    for (var i = 0; i < binary.length; i++) { bytes[i] = binary.charCodeAt(i); }
    return bytes.buffer;
  }

  function toText(buffer) {
    if (!buffer) { return null; }
    var bytes = new Uint8Array(buffer);
    var binary = "";
    for (var i = 0; i < bytes.length; i++) { binary += String.fromCharCode(bytes[i]); }
    return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  function withBuffers(options) {
    options.challenge = toBuffer(options.challenge);
    if (options.user) { options.user.id = toBuffer(options.user.id); }
    ["excludeCredentials", "allowCredentials"].forEach(function (key) {
      (options[key] || []).forEach(function (descriptor) {
        descriptor.id = toBuffer(descriptor.id);
      });
    });
    return options;
  }

  function asJSON(credential) {
    var response = credential.response;
    var answer = {
      id: credential.id,
      rawId: toText(credential.rawId),
      type: credential.type,
      authenticatorAttachment: credential.authenticatorAttachment || undefined,
      clientExtensionResults: credential.getClientExtensionResults(),
      response: { clientDataJSON: toText(response.clientDataJSON) }
    };
    if (response.attestationObject) {
      answer.response.attestationObject = toText(response.attestationObject);
      answer.response.transports = response.getTransports ? response.getTransports() : [];
    } else {
      answer.response.authenticatorData = toText(response.authenticatorData);
      answer.response.signature = toText(response.signature);
      answer.response.userHandle = toText(response.userHandle);
    }
    return answer;
  }

  // --- talking to the portal -----------------------------------------------------------

  function csrfToken() {
    try {
      return JSON.parse(document.body.getAttribute("hx-headers"))["X-CSRFToken"];
    } catch (error) {
      return "";
    }
  }

  // POST JSON with the CSRF token in a header, as htmx sends it; the answer's JSON, with
  // the status beside it. A page of HTML instead (an expired form, too many attempts)
  // becomes an error the caller words.
  function post(url, body) {
    return fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRFToken": csrfToken() },
      body: JSON.stringify(body || {})
    }).then(function (response) {
      return response.json().catch(function () { return {}; }).then(function (json) {
        json.ok = response.ok;
        json.status = response.status;
        return json;
      });
    });
  }

  function say(box, text) {
    var error = box.querySelector("[data-passkey-error]");
    if (error) { error.textContent = text || ""; error.hidden = !text; }
  }

  function failure(box, json) {
    return json.error || box.getAttribute("data-failed");
  }

  // The portal's own refusal, worded already: shown as it is.
  function refusal(text) {
    var error = new Error(text);
    error.ours = true;
    return error;
  }

  // --- signing in ----------------------------------------------------------------------

  var pending = null;  // the AbortController of the ceremony the page is waiting on

  function signIn(box, conditional) {
    if (pending) { pending.abort(); }
    var controller = new AbortController();
    pending = controller;
    say(box, "");
    return post(box.getAttribute("data-options")).then(function (options) {
      if (!options.ok) { throw refusal(failure(box, options)); }
      delete options.ok; delete options.status;
      var request = { publicKey: withBuffers(options), signal: controller.signal };
      if (conditional) { request.mediation = "conditional"; }
      return navigator.credentials.get(request);
    }).then(function (credential) {
      return post(box.getAttribute("data-verify"), asJSON(credential));
    }).then(function (answer) {
      if (answer.ok && answer.redirect) {
        window.location.assign(answer.redirect);
        return;
      }
      say(box, failure(box, answer));
    }).catch(function (error) {
      if (controller.signal.aborted) { return; }  // another ceremony took over
      if (error && error.name === "SecurityError") {
        box.hidden = true;  // this address cannot hold passkeys (not the portal's own)
        return;
      }
      if (conditional && !(error && error.ours)) { return; }  // a quiet offer stays quiet
      if (error && error.name === "NotAllowedError") {
        say(box, box.getAttribute("data-cancelled"));
        offer();
        return;
      }
      say(box, error && error.ours ? error.message : box.getAttribute("data-failed"));
    }).finally(function () {
      if (pending === controller && !conditional) { pending = null; }
    });
  }

  // The browser's own offer in the email field, where it can make one.
  function offer() {
    var box = document.querySelector("[data-passkey-sign-in]");
    var field = document.querySelector("input[autocomplete~=webauthn]");
    if (!box || !field || !PublicKeyCredential.isConditionalMediationAvailable) { return; }
    PublicKeyCredential.isConditionalMediationAvailable().then(function (available) {
      if (available) { signIn(box, true); }
    });
  }

  // --- a new passkey -------------------------------------------------------------------

  function register(form) {
    var name = form.querySelector("input[name=name]").value.trim();
    var button = form.querySelector("button[type=submit]");
    if (!name) { say(form, form.getAttribute("data-no-name")); return; }
    say(form, "");
    button.disabled = true;
    post(form.getAttribute("data-options")).then(function (options) {
      if (!options.ok) { throw refusal(failure(form, options)); }
      delete options.ok; delete options.status;
      return navigator.credentials.create({ publicKey: withBuffers(options) });
    }).then(function (credential) {
      return post(form.getAttribute("action"), {
        name: name, credential: asJSON(credential), next: form.getAttribute("data-next")
      });
    }).then(function (answer) {
      if (answer.ok && answer.redirect) {
        window.location.assign(answer.redirect);
        return;
      }
      say(form, failure(form, answer));
    }).catch(function (error) {
      if (error && (error.name === "NotAllowedError" || error.name === "AbortError")) {
        say(form, form.getAttribute("data-cancelled"));
      } else if (error && error.name === "InvalidStateError") {
        say(form, form.getAttribute("data-already"));
      } else {
        say(form, error && error.ours ? error.message : form.getAttribute("data-failed"));
      }
    }).finally(function () {
      button.disabled = false;
    });
  }

  // --- the page ------------------------------------------------------------------------

  function show(root) {
    var selector = supported ? "[data-passkey-register], [data-passkey-sign-in]"
      : "[data-passkey-unsupported]";
    Array.prototype.forEach.call(root.querySelectorAll(selector), function (element) {
      element.hidden = false;
    });
  }

  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (form.matches && form.matches("[data-passkey-register]")) {
      event.preventDefault();
      if (supported) { register(form); }
    }
  });

  document.addEventListener("click", function (event) {
    var button = event.target.closest && event.target.closest("[data-passkey-sign-in-button]");
    if (button && supported) {
      signIn(button.closest("[data-passkey-sign-in]"), false);
    }
  });

  // The sign-in form is swapped whole after a refused password: its new email field
  // gets the browser's offer again.
  document.addEventListener("htmx:afterSwap", function (event) {
    show(document);
    if (supported && document.querySelector("[data-passkey-sign-in]")) { offer(); }
  });

  function start() {
    show(document);
    if (supported) { offer(); }
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
