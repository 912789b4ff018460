/* The compose action's popup: in Thunderbird's language, marks the current choice, sets
 * the one clicked. */
(function () {
  "use strict";
  var api = self.CCMSendSecure;

  async function composeTab() {
    var tabs = await messenger.tabs.query({active: true, currentWindow: true});
    return tabs[0].id;
  }

  function mark(mode) {
    document.querySelectorAll("button[data-mode]").forEach(function (button) {
      button.setAttribute("aria-pressed", String(button.dataset.mode === mode));
    });
  }

  async function start() {
    api.localise(messenger, document);
    var tabId = await composeTab();
    var mode = await api.current(messenger, tabId);
    mark(mode);
    await api.show(messenger, tabId, mode);
    document.querySelectorAll("button[data-mode]").forEach(function (button) {
      button.addEventListener("click", async function () {
        try {
          mark(await api.choose(messenger, tabId, button.dataset.mode));
          window.close();
        } catch (error) {
          document.getElementById("problem").textContent = String(error.message || error);
        }
      });
    });
  }

  document.addEventListener("DOMContentLoaded", start);
}());
