// The Thunderbird extension's logic (app/mail_clients/thunderbird/send_secure.js)
// against a fake of messenger.compose and messenger.composeAction that records the
// custom headers set and the badge and title shown.
"use strict";
const test = require("node:test");
const assert = require("node:assert/strict");
const path = require("node:path");

const sendSecure = require(
  path.join(__dirname, "../../app/mail_clients/thunderbird/send_secure.js"));

/** messenger.i18n as Thunderbird gives it: a language's messages.json, "" for a key it
 * lacks (as Thunderbird does); the tests use English's and German's words. */
const MESSAGES = {
  en: {name: "Send Secure", lead: "Send this message securely:", all: "All recipients",
       external: "External recipients only", off: "Off", language: "en", direction: "ltr"},
  de: {name: "Sicher senden", lead: "Diese Nachricht sicher senden:", all: "Alle Empfänger",
       external: "Nur externe Empfänger", off: "Aus", language: "de", direction: "ltr"},
  ar: {name: "إرسال آمن", lead: "أرسل هذه الرسالة بأمان:", all: "جميع المستلمين",
       external: "المستلمون الخارجيون فقط", off: "معطَّل", language: "ar", direction: "rtl"},
};

function fakeI18n(language) {
  return {getMessage(key) { return MESSAGES[language][key] ?? ""; }};
}

/** One compose tab (id 7) and what the extension set on it. */
function fakeMessenger(customHeaders = [], language = "en") {
  const state = {customHeaders, badge: {}, title: {}, sets: []};
  const messenger = {
    state,
    i18n: fakeI18n(language),
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
  assert.equal(messenger.state.title[7], "Send Secure: All recipients");
  await sendSecure.choose(messenger, 7, "external");
  assert.equal(messenger.state.badge[7], "EXT");
  assert.equal(messenger.state.title[7], "Send Secure: External recipients only");
  await sendSecure.choose(messenger, 7, "off");
  assert.equal(messenger.state.badge[7], "");
  assert.equal(messenger.state.title[7], "Send Secure: Off");
});

test("the button's title is in Thunderbird's language", async () => {
  const messenger = fakeMessenger([], "de");
  await sendSecure.choose(messenger, 7, "external");
  assert.equal(messenger.state.title[7], "Sicher senden: Nur externe Empfänger");
  assert.equal(messenger.state.badge[7], "EXT");
});

/** The popup's markup, as far as localise reads it: elements with data-* and attributes. */
function fakeDocument(elements) {
  const documentElement = {lang: "en", dir: ""};
  return {
    title: "Send Secure",
    documentElement,
    querySelectorAll(selector) {
      const attribute = selector.match(/^\[data-([\w-]+)\]$/)[1]
        .replace(/-(\w)/g, (_, letter) => letter.toUpperCase());
      return elements.filter((element) => attribute in element.dataset);
    },
  };
}

function fakeElement(dataset) {
  return {dataset, textContent: "", attributes: {},
          setAttribute(name, value) { this.attributes[name] = value; }};
}

test("the popup is filled with the words of Thunderbird's language, Arabic right to left",
     () => {
  for (const language of ["en", "de", "ar"]) {
    const lead = fakeElement({i18n: "lead"});
    const group = fakeElement({i18nLabel: "name"});
    const buttons = ["all", "external", "off"].map((mode) => fakeElement({mode, i18n: mode}));
    const document = fakeDocument([lead, group, ...buttons]);
    sendSecure.localise({i18n: fakeI18n(language)}, document);
    const words = MESSAGES[language];
    assert.equal(lead.textContent, words.lead);
    assert.deepEqual(buttons.map((button) => button.textContent),
                     [words.all, words.external, words.off]);
    assert.equal(group.attributes["aria-label"], words.name);
    assert.equal(group.textContent, "", "a label is not text");
    assert.equal(document.title, words.name);
    assert.equal(document.documentElement.lang, language);
    assert.equal(document.documentElement.dir, language === "ar" ? "rtl" : "ltr");
  }
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
