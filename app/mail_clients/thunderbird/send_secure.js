/*
 * CCM "Send Secure" for Thunderbird: the compose window's button sets the header
 * X-CCM-Mode on the message being written ("all" or "external"; "Off" leaves none), and
 * its badge and title show the choice until the message is sent, in Thunderbird's
 * language (messenger.i18n: _locales/<language>/messages.json, built from the portal's
 * catalogs by app/mail_clients). The gateway honours the header only for senders
 * allowed to Send Secure, and removes it before delivery.
 *
 * The logic takes the messenger API as an argument, so tests/js/ runs it under Node
 * against a fake of messenger.compose and messenger.i18n that records what is set.
 */
(function (root, factory) {
  "use strict";
  var sendSecure = factory();
  if (typeof module === "object" && module.exports) {
    module.exports = sendSecure;
  } else {
    root.CCMSendSecure = sendSecure;
  }
}(typeof self !== "undefined" ? self : this, function () {
  "use strict";

  var HEADER = "X-CCM-Mode";
  // the values the gateway accepts (app/models/vocabulary.py, Mode); "off" sets none
  var MODES = ["all", "external", "off"];
  var BADGES = {all: "ALL", external: "EXT", off: ""};

  /* The button's title for ``mode``: "Send Secure: All recipients", in Thunderbird's
   * language (the messages of _locales are keyed by the mode). */
  function title(messenger, mode) {
    return messenger.i18n.getMessage("name") + ": " + messenger.i18n.getMessage(mode);
  }

  /*
   * Put the words of Thunderbird's language in ``document`` (the popup): each element's
   * text by its data-i18n key, its aria-label by data-i18n-label; the page's lang and
   * dir (Arabic right to left) from the messages "language" and "direction".
   */
  function localise(messenger, document) {
    var message = function (key) { return messenger.i18n.getMessage(key); };
    document.querySelectorAll("[data-i18n]").forEach(function (element) {
      element.textContent = message(element.dataset.i18n);
    });
    document.querySelectorAll("[data-i18n-label]").forEach(function (element) {
      element.setAttribute("aria-label", message(element.dataset.i18nLabel));
    });
    document.title = message("name");
    document.documentElement.lang = message("language");
    document.documentElement.dir = message("direction");
  }

  function isOurs(header) {
    return header.name.toLowerCase() === HEADER.toLowerCase();
  }

  /* The CCM mode the message in compose tab ``tabId`` carries: "off" without one. */
  async function current(messenger, tabId) {
    var details = await messenger.compose.getComposeDetails(tabId);
    var ours = (details.customHeaders || []).filter(isOurs);
    var value = ours.length ? String(ours[0].value).trim().toLowerCase() : "off";
    return MODES.indexOf(value) >= 0 ? value : "off";
  }

  /* Show ``mode`` on the compose action of tab ``tabId``. */
  async function show(messenger, tabId, mode) {
    await messenger.composeAction.setBadgeText({tabId: tabId, text: BADGES[mode]});
    await messenger.composeAction.setTitle({tabId: tabId, title: title(messenger, mode)});
  }

  /*
   * Set the CCM mode of the message in compose tab ``tabId``: the custom headers it
   * already has are kept, any X-CCM-Mode (in any spelling) is replaced by the one
   * chosen, or by none for "off". setComposeDetails replaces the whole list of custom
   * headers, so the list given is the whole one.
   */
  async function choose(messenger, tabId, mode) {
    if (MODES.indexOf(mode) < 0) {
      throw new Error("not a CCM mode: " + mode);
    }
    var details = await messenger.compose.getComposeDetails(tabId);
    var headers = (details.customHeaders || []).filter(function (header) {
      return !isOurs(header);
    });
    if (mode !== "off") {
      headers.push({name: HEADER, value: mode});
    }
    await messenger.compose.setComposeDetails(tabId, {customHeaders: headers});
    await show(messenger, tabId, mode);
    return mode;
  }

  /*
   * A tab has opened: for a compose tab, show the mode its message already carries (a
   * draft written with Send Secure on, a message edited again), so the button says it
   * before anyone opens the popup. Returns the mode shown, or null for any other tab.
   */
  async function opened(messenger, tab) {
    if (tab.type !== "messageCompose") {
      return null;
    }
    var mode = await current(messenger, tab.id);
    await show(messenger, tab.id, mode);
    return mode;
  }

  return {HEADER: HEADER, MODES: MODES, BADGES: BADGES, title: title, localise: localise,
          current: current, show: show, choose: choose, opened: opened};
}));
