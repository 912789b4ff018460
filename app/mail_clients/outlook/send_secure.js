/*
 * CCM "Send Secure" for Outlook: the compose window's menu sets the internet header
 * X-CCM-Mode on the message being written ("all" or "external"; "Off" removes it) and
 * says so in an info bar on the message, in Outlook's display language. The gateway
 * honours the header only for senders allowed to Send Secure, and removes it before any
 * delivery.
 *
 * Loaded by commands.html (the add-in's function file) after Microsoft's Office.js.
 * The logic takes the Mailbox API's item as an argument, so tests/js/ runs it under
 * Node against a fake that records what is set.
 */
(function (root, factory) {
  "use strict";
  var sendSecure = factory();
  if (typeof module === "object" && module.exports) {
    module.exports = sendSecure;
  } else {
    root.CCMSendSecure = sendSecure;
    sendSecure.register(root);
  }
}(typeof self !== "undefined" ? self : this, function () {
  "use strict";

  var HEADER = "X-CCM-Mode";
  // the key of the add-in's one info bar: each choice replaces the last one's
  var NOTICE = "ccmSendSecure";
  // the values the gateway accepts (app/models/vocabulary.py, Mode); "off" sets none,
  // each with the key of what the info bar then says
  var CHOICES = {all: "noticeAll", external: "noticeExternal", off: "noticeOff"};
  // what the info bar says, in the portal's languages (English where Outlook's is none
  // of them): the portal's catalogs' words, which tests/test_mail_clients.py holds
  // this table to (app/mail_clients/wording.py)
  var MESSAGES = {
    en: {
      noticeAll: "Send Secure: all recipients get this message through the secure portal.",
      noticeExternal: "Send Secure: external recipients get this message through the secure portal; colleagues get it as usual.",
      noticeOff: "Send Secure is off: this message goes as usual (unless a policy of your organisation sends it securely).",
      noticeFailed: "Send Secure could not be set:"
    },
    de: {
      noticeAll: "Sicher senden: Alle Empfänger erhalten diese Nachricht über das sichere Portal.",
      noticeExternal: "Sicher senden: Externe Empfänger erhalten diese Nachricht über das sichere Portal; Kolleginnen und Kollegen wie gewohnt.",
      noticeOff: "Sicher senden ist aus: Diese Nachricht geht wie gewohnt (sofern keine Richtlinie Ihrer Organisation sie sicher sendet).",
      noticeFailed: "Sicher senden konnte nicht gesetzt werden:"
    },
    fr: {
      noticeAll: "Envoi sécurisé : tous les destinataires reçoivent ce message par le portail sécurisé.",
      noticeExternal: "Envoi sécurisé : les destinataires externes reçoivent ce message par le portail sécurisé ; vos collègues comme d’habitude.",
      noticeOff: "Envoi sécurisé désactivé : ce message part comme d’habitude (sauf si une règle de votre organisation l’envoie de façon sécurisée).",
      noticeFailed: "L’envoi sécurisé n’a pas pu être défini :"
    },
    es: {
      noticeAll: "Envío seguro: todos los destinatarios reciben este mensaje a través del portal seguro.",
      noticeExternal: "Envío seguro: los destinatarios externos reciben este mensaje a través del portal seguro; sus colegas, como siempre.",
      noticeOff: "Envío seguro desactivado: este mensaje se envía como siempre (salvo que una política de su organización lo envíe de forma segura).",
      noticeFailed: "No se pudo establecer el envío seguro:"
    },
    ar: {
      noticeAll: "إرسال آمن: يتلقى جميع المستلمين هذه الرسالة عبر البوابة الآمنة.",
      noticeExternal: "إرسال آمن: يتلقى المستلمون الخارجيون هذه الرسالة عبر البوابة الآمنة، وزملاؤك كالمعتاد.",
      noticeOff: "الإرسال الآمن معطَّل: تُرسل هذه الرسالة كالمعتاد (ما لم تُرسلها سياسة لمؤسستك بأمان).",
      noticeFailed: "تعذّر ضبط الإرسال الآمن:"
    }
  };
  // the function names the manifest's ExecuteFunction actions call
  var COMMANDS = {sendSecureAll: "all", sendSecureExternal: "external", sendSecureOff: "off"};

  function succeeded(result) {
    return !result || result.status === "succeeded";
  }

  function problem(result) {
    return (result && result.error && result.error.message) || "unknown error";
  }

  // the most an info bar holds: a longer message would be refused, and say nothing
  var NOTICE_LENGTH = 150;

  /* The info bar's words in ``language`` (Office.context.displayLanguage, "de-DE"). */
  function wording(language) {
    var primary = String(language || "").split("-")[0].toLowerCase();
    return Object.prototype.hasOwnProperty.call(MESSAGES, primary) ? MESSAGES[primary]
      : MESSAGES.en;
  }

  function notify(item, type, message, done) {
    var details = {type: type, message: message.slice(0, NOTICE_LENGTH)};
    if (type === "informationalMessage") {
      details.icon = "Icon.16x16";
      details.persistent = true;
    }
    item.notificationMessages.replaceAsync(NOTICE, details, function () { done(); });
  }

  /*
   * Set the CCM mode of the message ``item`` (Office.context.mailbox.item in compose
   * mode): ``mode`` is "all", "external" or "off". ``done`` is called once, with null
   * or the reason it failed, after the info bar says what happened, in ``language``
   * (Office.context.displayLanguage; English without one).
   */
  function choose(item, mode, done, language) {
    var words = wording(language);
    if (!Object.prototype.hasOwnProperty.call(CHOICES, mode)) {
      done("not a CCM mode: " + mode);
      return;
    }
    var saved = function (result) {
      if (!succeeded(result)) {
        var reason = problem(result);
        notify(item, "errorMessage", words.noticeFailed + " " + reason,
               function () { done(reason); });
        return;
      }
      notify(item, "informationalMessage", words[CHOICES[mode]], function () { done(null); });
    };
    if (mode === "off") {
      item.internetHeaders.removeAsync([HEADER], saved);
    } else {
      var headers = {};
      headers[HEADER] = mode;
      item.internetHeaders.setAsync(headers, saved);
    }
  }

  /* The handler of one menu choice: Outlook passes ``event``, to be completed. */
  function command(office, mode) {
    return function (event) {
      choose(office.context.mailbox.item, mode, function () { event.completed(); },
             office.context.displayLanguage);
    };
  }

  /* Make the menu's functions known to Outlook: by name on the function file's window
   * (classic Outlook) and through Office.actions (Outlook on the web, new Outlook). */
  function register(scope) {
    var office = scope.Office;
    if (!office) {
      return;
    }
    Object.keys(COMMANDS).forEach(function (name) {
      var handler = command(office, COMMANDS[name]);
      scope[name] = handler;
      if (office.actions && office.actions.associate) {
        office.actions.associate(name, handler);
      }
    });
    if (office.onReady) {
      office.onReady();
    }
  }

  return {HEADER: HEADER, NOTICE: NOTICE, CHOICES: CHOICES, MESSAGES: MESSAGES,
          COMMANDS: COMMANDS, wording: wording, choose: choose, command: command, register: register};
}));
