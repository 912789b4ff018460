// The Thunderbird extension's logic (app/mail_clients/thunderbird/send_secure.js)
// against a fake of messenger.compose and messenger.composeAction that records the
// custom headers set and the badge and title shown.
"use strict";
const test = require("node:test");
const assert = require("node:assert/strict");
const path = require("node:path");

const sendSecure = require(
  path.join(__dirname, "../../app/mail_clients/thunderbird/send_secure.js"));

/** One compose tab (id 7) and what the extension set on it. */
function fakeMessenger(customHeaders = []) {
  const state = {customHeaders, badge: {}, title: {}, sets: []};
  const messenger = {
    state,
    compose: {
      async getComposeDetails(tabId) {
        assert.equal(tabId, 7);
        return {subject: "Contract draft", customHeaders: state.customHeaders.map((h) => ({...h}))};
      },
      async setComposeDetails(tabId, details) {
        assert.equal(tabId, 7);
        assert.deepEqual(Object.keys(details), ["customHeaders"], "only the headers are set");
        state.sets.push(details);
        state.customHeaders = details.customHeaders;  // the whole list is replaced
      },
    },
    composeAction: {
      async setBadgeText({tabId, text}) { state.badge[tabId] = text; },
      async setTitle({tabId, title}) { state.title[tabId] = title; },
    },
  };
  return messenger;
}

test("each choice sets exactly the header the gateway reads", async () => {
  for (const mode of ["all", "external"]) {
    const messenger = fakeMessenger();
    assert.equal(await sendSecure.choose(messenger, 7, mode), mode);
    assert.deepEqual(messenger.state.customHeaders, [{name: "X-CCM-Mode", value: mode}]);
  }
});

test("Off leaves no X-CCM-Mode, in any spelling, and keeps other custom headers", async () => {
  const messenger = fakeMessenger([{name: "X-Other", value: "kept"},
                                   {name: "X-Ccm-Mode", value: "all"}]);
  await sendSecure.choose(messenger, 7, "off");
  assert.deepEqual(messenger.state.customHeaders, [{name: "X-Other", value: "kept"}]);
});

test("the choice can be changed until sending: one header, the last choice", async () => {
  const messenger = fakeMessenger([{name: "X-Other", value: "kept"}]);
  await sendSecure.choose(messenger, 7, "all");
  await sendSecure.choose(messenger, 7, "external");
  assert.deepEqual(messenger.state.customHeaders, [{name: "X-Other", value: "kept"},
                                                   {name: "X-CCM-Mode", value: "external"}]);
  assert.equal(await sendSecure.current(messenger, 7), "external");
});

test("the button shows the choice: badge and title", async () => {
  const messenger = fakeMessenger();
  await sendSecure.choose(messenger, 7, "all");
  assert.equal(messenger.state.badge[7], "ALL");
  assert.match(messenger.state.title[7], /all recipients/);
  await sendSecure.choose(messenger, 7, "external");
  assert.equal(messenger.state.badge[7], "EXT");
  assert.match(messenger.state.title[7], /external recipients only/);
  await sendSecure.choose(messenger, 7, "off");
  assert.equal(messenger.state.badge[7], "");
  assert.match(messenger.state.title[7], /off/);
});

test("the current choice is read back from the message, Http-Header-Case or not", async () => {
  assert.equal(await sendSecure.current(fakeMessenger(), 7), "off");
  assert.equal(await sendSecure.current(
    fakeMessenger([{name: "X-Ccm-Mode", value: " All "}]), 7), "all");
  assert.equal(await sendSecure.current(
    fakeMessenger([{name: "X-CCM-Mode", value: "secure"}]), 7), "off");
});

test("no other value is ever set", async () => {
  const messenger = fakeMessenger();
  await assert.rejects(sendSecure.choose(messenger, 7, "secure"), /not a CCM mode/);
  assert.deepEqual(messenger.state.sets, []);
});

test("a compose window that opens with a choice shows it on the button", async () => {
  const messenger = fakeMessenger([{name: "X-Ccm-Mode", value: "external"}]);
  assert.equal(await sendSecure.opened(messenger, {id: 7, type: "messageCompose"}), "external");
  assert.equal(messenger.state.badge[7], "EXT");
  assert.deepEqual(messenger.state.sets, [], "opening changes nothing on the message");
  assert.equal(await sendSecure.opened(messenger, {id: 8, type: "mail"}), null);
  assert.equal(messenger.state.badge[8], undefined);
});
