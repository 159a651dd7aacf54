// Passkeys (WebAuthn) for the second factor: a form with data-passkey="create" or "get" asks the
// server for options, lets the browser's authenticator answer, and posts the answer as JSON.
(function () {
  "use strict";
  if (!window.PublicKeyCredential) {
    document.querySelectorAll("form[data-passkey]").forEach(function (form) { form.hidden = true; });
    return;
  }
  function csrf(form) { return form.querySelector("input[name=csrf_token]").value; }
  async function answer(form) {
    const response = await fetch(form.dataset.options, {
      method: "POST",
      headers: {"Content-Type": "application/x-www-form-urlencoded"},
      body: "csrf_token=" + encodeURIComponent(csrf(form)),
      credentials: "same-origin",
    });
    if (!response.ok) { throw new Error("options " + response.status); }
    const options = await response.json();
    const credential = form.dataset.passkey === "create"
      ? await navigator.credentials.create({publicKey: PublicKeyCredential.parseCreationOptionsFromJSON(options)})
      : await navigator.credentials.get({publicKey: PublicKeyCredential.parseRequestOptionsFromJSON(options)});
    return JSON.stringify(credential.toJSON());
  }
  document.querySelectorAll("form[data-passkey]").forEach(function (form) {
    form.addEventListener("submit", function (event) {
      const field = form.querySelector("input[name=credential]");
      if (field.value) { return; }
      event.preventDefault();
      answer(form).then(function (json) {
        field.value = json;
        form.submit();
      }).catch(function () {
        let note = form.querySelector(".passkey-error");
        if (!note) {
          note = document.createElement("p");
          note.className = "passkey-error notice notice--error";
          note.setAttribute("role", "alert");
          form.prepend(note);
        }
        note.textContent = "The passkey did not answer. Try again, or use a code.";
      });
    });
  });
})();
