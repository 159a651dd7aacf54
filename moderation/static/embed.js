/* Comment embed loader: progressive enhancement of the server-rendered thread and form.
   No dependencies, no build step. Without this script the fragment's form still posts and
   redirects (303); with it, submission goes to the JSON API and errors appear in place. */
(function () {
  "use strict";
  var script = document.currentScript;
  var base = script ? new URL(script.src, location.href).origin : location.origin;

  function $(root, selector) { return root.querySelector(selector); }
  function $$(root, selector) { return Array.prototype.slice.call(root.querySelectorAll(selector)); }
  function format(text, values) {
    return text.replace(/\{(\w+)\}/g, function (_, key) { return values[key]; });
  }

  /* Iframe mode, host side: resize our frames to the height they report, from our origin only. */
  window.addEventListener("message", function (event) {
    if (event.origin !== base || !event.data || event.data.type !== "cm:height") { return; }
    $$(document, "iframe").forEach(function (frame) {
      if (frame.contentWindow === event.source) {
        frame.style.height = Math.ceil(Number(event.data.height) || 0) + "px";
      }
    });
  });

  /* Iframe mode, frame side: report the page's height to the site's origins only. */
  function reportHeight() {
    if (window.parent === window) { return; }
    var origins = (document.body.getAttribute("data-cm-origins") || "").split(" ");
    var height = document.documentElement.scrollHeight;
    origins.forEach(function (origin) {
      if (origin) { window.parent.postMessage({ type: "cm:height", height: height }, origin); }
    });
  }

  function enhance(root) {
    var form = $(root, "#cm-form");
    wireMore(root);
    if (!form) { return; }
    var messages = JSON.parse(form.getAttribute("data-cm-messages") || "{}");
    var home = document.createComment("cm-form-home");
    form.parentNode.insertBefore(home, form);
    var status = $(form, "#cm-status");
    var summary = $(form, "#cm-error-summary");
    var textarea = $(form, "#cm-body");
    var counter = $(form, "#cm-body-count");
    var replying = $(form, "#cm-replying");
    var lastReplyLink = null;
    var countTimer = null;

    function announce(text) {
      status.textContent = "";
      window.setTimeout(function () { status.textContent = text; }, 50);
    }

    function updateCount(speak) {
      var max = Number(textarea.getAttribute("data-cm-maxlength"));
      var left = max - textarea.value.length;
      var text = left >= 0 ? format(messages.characters_left, { n: left.toLocaleString("en-GB") })
        : format(messages.characters_over, { n: (-left).toLocaleString("en-GB") });
      counter.textContent = text;
      counter.classList.toggle("cm-count--over", left < 0);
      if (speak) {
        window.clearTimeout(countTimer);
        countTimer = window.setTimeout(function () { announce(text); }, 1000);
      }
    }
    textarea.addEventListener("input", function () { updateCount(true); });
    if (textarea.value) { updateCount(false); }

    function setReply(link) {
      var item = link.closest(".cm-comment");
      var article = $(item, ".cm-article");
      article.parentNode.insertBefore(form, article.nextSibling);
      form.elements.parent_id.value = link.getAttribute("data-cm-reply");
      $(replying, ".cm-replying-text").textContent =
        format(messages.replying_to, { name: $(item, ".cm-author").textContent }) + " ";
      replying.hidden = false;
      lastReplyLink = link;
      textarea.focus();
      reportHeight();
    }
    function cancelReply(restoreFocus) {
      home.parentNode.insertBefore(form, home.nextSibling);
      form.elements.parent_id.value = "";
      replying.hidden = true;
      if (restoreFocus && lastReplyLink) { lastReplyLink.focus(); }
      lastReplyLink = null;
      reportHeight();
    }
    root.addEventListener("click", function (event) {
      var link = event.target.closest && event.target.closest("a");
      if (!link || !root.contains(link)) { return; }
      if (link.hasAttribute("data-cm-reply")) { event.preventDefault(); setReply(link); }
      else if (link.hasAttribute("data-cm-report")) { event.preventDefault(); link.cm = link.cm || report(link); }
      else if (link.classList.contains("cm-cancel-reply")) { event.preventDefault(); cancelReply(true); }
      else if (link.closest(".cm-error-summary")) {
        var field = document.getElementById(link.getAttribute("href").slice(1));
        if (field) { event.preventDefault(); field.focus(); }
      }
    });

    /* The report page's form, under the comment. */
    function report(link) {
      return fetch(link.href).then(function (r) { return r.text(); }).then(function (html) {
        var box = $(new DOMParser().parseFromString(html, "text/html"), "form");
        if (!box) { throw 0; }
        link.closest(".cm-article").after(box);
        $(box, "input").focus();
      }).catch(function () { location.href = link.href; }); /* its page says why */
    }

    function clearErrors() {
      summary.hidden = true;
      $(summary, "ul").textContent = "";
      $$(form, ".cm-field--error").forEach(function (el) { el.classList.remove("cm-field--error"); });
      $$(form, ".cm-error-message").forEach(function (el) { el.hidden = true; });
      $$(form, "[aria-invalid]").forEach(function (el) {
        el.removeAttribute("aria-invalid");
        var ids = (el.getAttribute("aria-describedby") || "").split(" ").filter(function (id) {
          return id && id !== el.id + "-error";
        });
        if (ids.length) { el.setAttribute("aria-describedby", ids.join(" ")); }
        else { el.removeAttribute("aria-describedby"); }
      });
    }

    function errorCount(n) {
      return n === 1 ? messages.error_count_1 : format(messages.error_count_n, { n: n });
    }

    function showSummary(count) {
      summary.hidden = false;
      // The whole summary in view (its title too), then focus without scrolling again.
      summary.scrollIntoView({ block: "start" });
      summary.focus({ preventScroll: true });
      announce(messages.error_summary_title + ": " + errorCount(count));
      reportHeight();
    }

    /* A problem with the form as a whole (too many comments, no connection): said once, above
       the fields, and no field is marked as wrong. */
    function showFormError(text) {
      var item = document.createElement("li");
      item.className = "cm-error-plain";
      item.textContent = text;
      $(summary, "ul").appendChild(item);
      showSummary(1);
    }

    function showErrors(fields, fallback) {
      var list = $(summary, "ul");
      var order = ["author_name", "author_email", "body"];
      var names = Object.keys(fields).sort(function (a, b) {
        return (order.indexOf(a) + 1 || 9) - (order.indexOf(b) + 1 || 9);
      });
      if (!names.length) { showFormError(fallback); return; }
      names.forEach(function (name) {
        var text = messages["field_" + name] || fields[name];
        var input = form.elements[name];
        var target = input && input.type !== "hidden" ? input : textarea;
        if (target === input) {
          var message = document.getElementById("cm-" + name + "-error");
          $(message, ".cm-error-text").textContent = text;
          message.hidden = false;
          input.closest(".cm-field").classList.add("cm-field--error");
          input.setAttribute("aria-invalid", "true");
          var ids = (input.getAttribute("aria-describedby") || "").split(" ").filter(Boolean);
          ids.push(message.id);
          input.setAttribute("aria-describedby", ids.join(" "));
        }
        var item = document.createElement("li");
        var link = document.createElement("a");
        link.href = "#" + target.id;
        link.textContent = text;
        item.appendChild(link);
        list.appendChild(item);
      });
      showSummary(names.length);
    }

    /* How long a rate-limited commenter waits, from Retry-After (seconds). */
    function waitText(retryAfter) {
      var seconds = Math.max(1, Math.ceil(Number(retryAfter) || 0));
      if (!retryAfter) { return ""; }
      return seconds < 120 ? format(messages.wait_seconds, { n: seconds })
        : format(messages.wait_minutes, { n: Math.ceil(seconds / 60) });
    }

    var notice = $(root, "#comment-submitted");
    var noticeHome = document.createComment("cm-notice-home");
    if (notice) { notice.parentNode.insertBefore(noticeHome, notice); }

    form.addEventListener("submit", function (event) {
      event.preventDefault();
      clearErrors();
      var button = $(form, "button[type=submit]");
      button.disabled = true;
      announce(messages.sending);
      var data = {
        post: form.getAttribute("data-cm-post"),
        lang: form.getAttribute("data-cm-lang") || "en",
        author_name: form.elements.author_name.value,
        author_email: form.elements.author_email.value,
        body: textarea.value
      };
      // form_token (the time-trap) and website (the honeypot) go along as the no-JS form sends them.
      ["post_title", "post_url", "parent_id", "form_token", "website", "published"]
        .forEach(function (name) {
          var field = form.elements[name];
          if (field && field.value) { data[name] = field.value; }
        });
      ["notify", "notify_replies"].forEach(function (name) {
        if (form.elements[name] && form.elements[name].checked) { data[name] = true; }
      });
      fetch(form.getAttribute("data-cm-api"), {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify(data),
        credentials: "omit"
      }).then(function (response) {
        return response.json().then(function (body) {
          return {
            ok: response.ok, status: response.status, body: body,
            retryAfter: response.headers.get("Retry-After")
          };
        });
      }).then(function (result) {
        button.disabled = false;
        if (result.ok) {
          var repliedTo = form.elements.parent_id.value &&
            document.getElementById("comment-" + form.elements.parent_id.value);
          textarea.value = "";
          updateCount(false);
          cancelReply(false);
          var said = repliedTo ? messages.reply_received : messages.received;
          // The notice goes where the reader was: under the comment replied to, or at the top.
          var article = repliedTo && $(repliedTo, ".cm-article");
          if (article) { article.parentNode.insertBefore(notice, article.nextSibling); }
          else { noticeHome.parentNode.insertBefore(notice, noticeHome.nextSibling); }
          notice.textContent = said;
          notice.classList.add("cm-notice--shown");
          // Own comment, this page only.
          var own = $(root, ".cm-own[hidden]");
          if (own && result.body.status !== "approved") {
            own = own.cloneNode(true);
            own.hidden = false;
            $(own, ".cm-author").textContent = data.author_name;
            $(own, ".cm-body").textContent = data.body;
            notice.after(own);
          }
          notice.focus();
          announce(said);
          reportHeight();
        } else if (result.status === 429) {
          var error429 = result.body.error || {};
          showFormError(((error429.message || messages.failed) + " " +
            waitText(result.retryAfter)).trim());
        } else {
          var error = result.body.error || {};
          showErrors(error.fields || {}, error.message || messages.failed);
        }
      }).catch(function () {
        button.disabled = false;
        showErrors({}, messages.failed);
      });
    });
  }

  /* "Show more": fetch the next page of the fragment and append its comments. */
  function wireMore(root) {
    root.addEventListener("click", function (event) {
      var link = event.target.closest && event.target.closest("a[data-cm-more]");
      if (!link || !root.contains(link)) { return; }
      event.preventDefault();
      fetch(new URL(link.getAttribute("data-cm-more"), base).href, { credentials: "omit" })
        .then(function (response) { return response.text(); })
        .then(function (html) {
          var next = new DOMParser().parseFromString(html, "text/html");
          var list = $(root, ".cm-comments");
          if (!list) {
            list = document.createElement("ol");
            list.className = "cm-comments";
            link.parentNode.parentNode.insertBefore(list, link.parentNode);
          }
          var added = $$(next, ".cm-comments > .cm-comment");
          added.forEach(function (item) { list.appendChild(document.importNode(item, true)); });
          var more = $(next, ".cm-more");
          var paragraph = link.parentNode;
          if (more) { paragraph.parentNode.replaceChild(document.importNode(more, true), paragraph); }
          else { paragraph.parentNode.removeChild(paragraph); }
          if (added.length) {
            var first = document.getElementById(added[0].id);
            first.setAttribute("tabindex", "-1");
            first.focus();
          }
          reportHeight();
        });
    });
  }

  function start() {
    if (document.body.classList.contains("cm-page")) {
      if (window.parent !== window) { document.documentElement.classList.add("cm-framed"); }
      enhance(document.body);
      reportHeight();
      if (window.ResizeObserver) { new ResizeObserver(reportHeight).observe(document.body); }
      return;
    }
    var root = document.getElementById("comments");
    if (!root) { return; }
    if ($(root, "#cm-thread")) { enhance(root); return; }  /* server-side include */
    var site = root.getAttribute("data-site") || (script && script.getAttribute("data-site"));
    if (!site) { return; }
    var post = root.getAttribute("data-post") || location.pathname;
    var lang = root.getAttribute("data-lang") || document.documentElement.lang || "en";
    var published = root.getAttribute("data-published");
    // A permalink's page, once styled.
    var hash = /^#comment-([\w-]+)$/.exec(location.hash);
    var url = base + "/embed/" + encodeURIComponent(site) + "/thread?post=" +
      encodeURIComponent(post) + "&lang=" + encodeURIComponent(lang.split("-")[0].toLowerCase()) +
      (published ? "&published=" + encodeURIComponent(published) : "") +
      (hash ? "&comment=" + hash[1] : "");
    root.setAttribute("aria-busy", "true");
    fetch(url, { credentials: "omit" }).then(function (response) {
      if (!response.ok) { throw new Error(String(response.status)); }
      return response.text();
    }).then(function (html) {
      root.innerHTML = html;
      root.removeAttribute("aria-busy");
      var form = $(root, "#cm-form");
      if (form) {
        if (!form.elements.post_title.value) {
          form.elements.post_title.value = root.getAttribute("data-title") || document.title;
        }
        if (!form.elements.post_url.value) {
          form.elements.post_url.value = root.getAttribute("data-url") || location.href.split("#")[0];
        }
      }
      enhance(root);
      var at = hash && document.getElementById(location.hash.slice(1));
      if (at) { $(root, "link").onload = function () { at.scrollIntoView(); }; }
      /* Back from a report (:target missed it). */
      var note = location.hash == "#comment-reported" && $(root, location.hash);
      if (note) { note.className += " cm-notice--shown"; note.focus(); }
    }).catch(function () {
      root.removeAttribute("aria-busy"); /* the fallback link inside #comments stays */
    });
  }

  if (document.readyState === "loading") { document.addEventListener("DOMContentLoaded", start); }
  else { start(); }
})();
