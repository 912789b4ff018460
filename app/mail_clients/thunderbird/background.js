/* Shows each new compose window's Send Secure choice on its button (send_secure.js). */
(function () {
  "use strict";
  var api = self.CCMSendSecure;

  messenger.tabs.onCreated.addListener(function (tab) {
    api.opened(messenger, tab).catch(function (error) {
      // a window closed before it was read: nothing to show
      console.warn("Send Secure: " + error);
    });
  });
}());
