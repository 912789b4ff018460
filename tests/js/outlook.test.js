// The Outlook add-in's logic (app/mail_clients/outlook/send_secure.js) against a fake of
// the Office.js Mailbox API that records the headers set and the info bar shown.
"use strict";
const test = require("node:test");
const assert = require("node:assert/strict");
const path = require("node:path");

const sendSecure = require(path.join(__dirname, "../../app/mail_clients/outlook/send_secure.js"));

const {fakeItem} = require("./fake_office.js");

function choose(item, mode, language) {
  return new Promise((resolve) => sendSecure.choose(item, mode, resolve, language));
}

test("each choice sets exactly the header the gateway reads", async () => {
  for (const mode of ["all", "external"]) {
    const item = fakeItem();
    assert.equal(await choose(item, mode), null);
    assert.deepEqual(item.headers, {"X-CCM-Mode": mode});
    assert.deepEqual(item.calls[0], ["setAsync", {"X-CCM-Mode": mode}]);
  }
});

test("Off removes the header", async () => {
  const item = fakeItem();
  await choose(item, "all");
  assert.equal(await choose(item, "off"), null);
  assert.deepEqual(item.headers, {});
  assert.deepEqual(item.calls.at(-2), ["removeAsync", ["X-CCM-Mode"]]);
});

test("the choice can be changed until sending: the last one is what is set", async () => {
  const item = fakeItem();
  await choose(item, "all");
  await choose(item, "external");
  assert.deepEqual(item.headers, {"X-CCM-Mode": "external"});
  await choose(item, "off");
  await choose(item, "all");
  assert.deepEqual(item.headers, {"X-CCM-Mode": "all"});
});

test("the info bar says the choice, one bar replaced each time", async () => {
  const item = fakeItem();
  await choose(item, "external");
  await choose(item, "all");
  assert.deepEqual(Object.keys(item.notices), [sendSecure.NOTICE]);
  const notice = item.notices[sendSecure.NOTICE];
  assert.equal(notice.type, "informationalMessage");
  assert.equal(notice.message, sendSecure.MESSAGES.en.noticeAll);
  assert.match(notice.message, /^Send Secure: all recipients/);
  assert.equal(notice.icon, "Icon.16x16");  // a resid of the manifest
  assert.equal(notice.persistent, true);
  await choose(item, "off");
  assert.match(item.notices[sendSecure.NOTICE].message, /off/);
});

test("every message fits an info bar, in every language, with a reason after the error's",
     () => {
  assert.deepEqual(Object.keys(sendSecure.MESSAGES), ["en", "de", "fr", "es", "ar"]);
  for (const [language, messages] of Object.entries(sendSecure.MESSAGES)) {
    assert.deepEqual(Object.keys(messages).sort(), [...Object.values(sendSecure.CHOICES),
                                                    "noticeFailed"].sort(), language);
    for (const message of Object.values(messages)) {
      assert.ok(message.length > 0 && message.length <= 150, `${language}: ${message}`);
    }
    assert.ok(messages.noticeFailed.length <= 60, "room for the reason");
  }
});

test("the info bar speaks Outlook's display language, English for any other", async () => {
  const said = {};
  for (const language of ["de-DE", "de-AT", "FR-fr", "es-MX", "ar-SA", "en-GB", "ja-JP",
                          "", undefined]) {
    const item = fakeItem();
    await choose(item, "external", language);
    said[String(language)] = item.notices[sendSecure.NOTICE].message;
  }
  const {MESSAGES} = sendSecure;
  assert.equal(said["de-DE"], MESSAGES.de.noticeExternal);
  assert.match(said["de-DE"], /^Sicher senden: Externe Empfänger/);
  assert.equal(said["de-AT"], MESSAGES.de.noticeExternal);
  assert.equal(said["FR-fr"], MESSAGES.fr.noticeExternal);
  assert.equal(said["es-MX"], MESSAGES.es.noticeExternal);
  assert.equal(said["ar-SA"], MESSAGES.ar.noticeExternal);
  for (const other of ["en-GB", "ja-JP", "", "undefined"]) {
    assert.equal(said[other], MESSAGES.en.noticeExternal, other);
  }
  assert.equal(sendSecure.wording("constructor"), MESSAGES.en, "no property of an object");
});

test("an error is said in the display language, with Outlook's reason", async () => {
  const item = fakeItem({fail: "Internet headers are not supported"});
  await choose(item, "all", "fr-FR");
  assert.equal(item.notices[sendSecure.NOTICE].message,
               sendSecure.MESSAGES.fr.noticeFailed + " Internet headers are not supported");
});

test("a header Outlook refuses is reported in the info bar, not swallowed", async () => {
  const item = fakeItem({fail: "Internet headers are not supported"});
  assert.equal(await choose(item, "all"), "Internet headers are not supported");
  const notice = item.notices[sendSecure.NOTICE];
  assert.equal(notice.type, "errorMessage");
  assert.match(notice.message, /could not be set: Internet headers are not supported/);
  assert.equal(notice.icon, undefined);  // an error message takes none
});

test("a long reason is cut to what an info bar holds", async () => {
  const item = fakeItem({fail: "x".repeat(400)});
  await choose(item, "external");
  assert.equal(item.notices[sendSecure.NOTICE].message.length, 150);
});

test("no other value is ever set", async () => {
  const item = fakeItem();
  assert.match(await choose(item, "secure"), /not a CCM mode/);
  assert.deepEqual(item.calls, []);
});

test("the menu's functions complete their event, by name and through Office.actions", async () => {
  const item = fakeItem();
  const associated = {};
  let ready = 0;
  const scope = {
    Office: {
      context: {mailbox: {item}, displayLanguage: "es-ES"},
      actions: {associate(name, handler) { associated[name] = handler; }},
      onReady() { ready += 1; },
    },
  };
  sendSecure.register(scope);
  assert.deepEqual(Object.keys(associated).sort(),
                   ["sendSecureAll", "sendSecureExternal", "sendSecureOff"]);
  assert.equal(scope.sendSecureAll, associated.sendSecureAll);
  assert.equal(ready, 1);
  for (const [name, mode] of Object.entries(sendSecure.COMMANDS)) {
    await new Promise((resolve) => associated[name]({completed: resolve}));
    assert.deepEqual(item.headers, mode === "off" ? {} : {"X-CCM-Mode": mode});
    assert.equal(item.notices[sendSecure.NOTICE].message,
                 sendSecure.MESSAGES.es[sendSecure.CHOICES[mode]], "in Outlook's language");
  }
});

test("without Office.js (a page opened by hand) nothing is registered", () => {
  const scope = {};
  sendSecure.register(scope);
  assert.deepEqual(scope, {});
});
