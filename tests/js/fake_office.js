// A fake of Office.js's compose item (Mailbox 1.8's internetHeaders and
// notificationMessages) that records the headers set, the info bar shown and each call.
// Used by outlook.test.js, under Node by tests/gateway/test_mail_client_buttons.py, and
// in Chromium by tests/browser/test_mail_clients_flow.py (as Office.js's item).
(function (root) {
  "use strict";

  /** A message being composed, with ``headers`` already on it; with ``fail``, every
   * header call fails with that message. */
  function fakeItem({headers = {}, fail = null} = {}) {
    const item = {
      headers,
      notices: {},
      calls: [],
      internetHeaders: {
        setAsync(set, callback) {
          item.calls.push(["setAsync", set]);
          if (fail) return callback({status: "failed", error: {message: fail}});
          Object.assign(item.headers, set);
          callback({status: "succeeded"});
        },
        removeAsync(names, callback) {
          item.calls.push(["removeAsync", names]);
          if (fail) return callback({status: "failed", error: {message: fail}});
          for (const name of names) delete item.headers[name];
          callback({status: "succeeded"});
        },
      },
      notificationMessages: {
        replaceAsync(key, details, callback) {
          item.calls.push(["replaceAsync", key, details]);
          item.notices[key] = details;
          callback({status: "succeeded"});
        },
      },
    };
    return item;
  }

  if (typeof module === "object" && module.exports) {
    module.exports = {fakeItem};
  } else {
    root.fakeItem = fakeItem;
  }
}(typeof self !== "undefined" ? self : this));
