/*! Tally LoyaltyWidget v2.1.0: the redemption portal a page embeds beside the Genesys Messenger.
 * Plain JS, no framework, no build step: this file is served as /widget/v2.1.0/bundle.min.js.
 *
 * LoyaltyWidget.init({
 *   container: 'loyalty-portal',       // element id (no #), a CSS selector, or an element
 *   apiUrl: 'https://ledger.yourdomain.com/v1/portal',
 *   oauthToken: sessionToken,          // the portal session token (sessionToken is accepted too)
 *   customerId: 'c7d1e3f0-...',        // optional: the server refuses it unless it is the session's customer
 *   theme: 'light',                    // or 'dark'
 *   refreshInterval: 30000,            // ms between refreshes (0: never)
 *   onSessionExpired: () => fetch('/my-backend/loyalty-session').then(r => r.text()), // optional
 *   onTokenRefreshed: (token) => {}    // optional: told each new token the widget got
 * }) -> {refresh(), setToken(token), destroy()}
 *
 * The server decides balance, cost, stock and eligibility; the widget only shows what it answers.
 */
(function (global) {
  'use strict';
  var VERSION = '2.1.0';
  var STYLE = [
    '.lw-root{--bg:#fff;--fg:#1c2230;--mute:#5d6679;--line:#e3e6ec;--acc:#1f5fd6;--accfg:#fff;--bad:#b42318;--ok:#17703b;--card:#f5f6f8;',
    'font:15px/1.4 system-ui,sans-serif;color:var(--fg);background:var(--bg);border:1px solid var(--line);border-radius:12px;padding:1rem;max-width:32rem;box-sizing:border-box}',
    '.lw-root *{box-sizing:border-box}',
    '.lw-dark{--bg:#161a22;--fg:#e8ebf2;--mute:#a3acbe;--line:#323846;--acc:#7aa7ff;--accfg:#0b1020;--bad:#ff8f85;--ok:#6fdc98;--card:#1f2430}',
    '.lw-head{display:flex;align-items:baseline;justify-content:space-between;gap:1rem;margin-bottom:.75rem}',
    '.lw-bal{font-size:1.9rem;font-weight:700}.lw-lbl{color:var(--mute)}.lw-tier{color:var(--mute);text-transform:capitalize}',
    '.lw-msg{min-height:1.2em;margin:.25rem 0 .5rem}.lw-err{color:var(--bad)}.lw-ok{color:var(--ok)}',
    '.lw-list{list-style:none;margin:0;padding:0}',
    '.lw-item{display:flex;gap:.75rem;align-items:center;justify-content:space-between;padding:.6rem .5rem;border-top:1px solid var(--line)}',
    '.lw-item:first-child{border-top:0}.lw-item>div:first-of-type{flex:1}.lw-img{width:48px;height:48px;object-fit:cover;border-radius:6px}.lw-name{font-weight:600}.lw-desc{color:var(--mute);font-size:.85rem}',
    '.lw-why{display:inline-block;font-size:.75rem;border-radius:999px;padding:0 .5em;margin-top:.2rem;border:1px solid var(--line);color:var(--mute)}',
    '.lw-item[data-state=unaffordable] .lw-why{border-color:var(--bad);color:var(--bad)}.lw-item[data-state=ineligible] .lw-why{border-style:dashed}',
    '.lw-cost{font-weight:600;white-space:nowrap}',
    '.lw-item[data-state=unaffordable] .lw-cost{color:var(--bad)}',
    '.lw-item[data-state=ineligible]{opacity:.8}',
    '.lw-item[data-state=soldout]{opacity:.5}.lw-item[data-state=soldout] .lw-name{text-decoration:line-through}',
    '.lw-btn{font:inherit;border:1px solid var(--acc);background:var(--acc);color:var(--accfg);border-radius:8px;padding:.35rem .8rem;cursor:pointer}',
    '.lw-btn[disabled]{background:transparent;color:var(--mute);border-color:var(--line);cursor:not-allowed}',
    '.lw-btn.lw-sec{background:transparent;color:var(--fg);border-color:var(--line)}',
    '.lw-btn:focus-visible{outline:3px solid var(--acc);outline-offset:2px}',
    '.lw-back{position:fixed;inset:0;background:#0008;display:flex;align-items:center;justify-content:center;z-index:2147483000}',
    '.lw-modal{background:var(--bg);color:var(--fg);border-radius:12px;padding:1.25rem;width:min(26rem,92vw);box-shadow:0 8px 30px #0006}',
    '.lw-modal h2{margin:0 0 .5rem;font-size:1.2rem}.lw-acts{display:flex;gap:.5rem;justify-content:flex-end;margin-top:1rem}',
    '.lw-rcpt{background:var(--card);border-radius:8px;padding:.5rem .75rem;margin:.5rem 0}.lw-rcpt dt{color:var(--mute);font-size:.8rem}',
    '.lw-rcpt dd{margin:0 0 .35rem;font-weight:600;word-break:break-all}'
  ].join('');

  // el builds an element: el('div', {class: 'x', onclick: fn}, child, 'text', ...).
  function el(tag, attrs) {
    var n = document.createElement(tag);
    for (var k in attrs || {}) {
      var v = attrs[k];
      if (v == null || v === false) continue;
      if (k.slice(0, 2) === 'on') n.addEventListener(k.slice(2), v);
      else if (k === 'text') n.textContent = v;
      else n.setAttribute(k, v === true ? '' : v);
    }
    for (var i = 2; i < arguments.length; i++) {
      var c = arguments[i];
      if (c != null && c !== false) n.append(c.nodeType ? c : String(c));
    }
    return n;
  }

  function pts(n) { return Number(n).toLocaleString() + ' pts'; }

  function uuid() {
    var c = global.crypto;
    if (c && c.randomUUID) return c.randomUUID();
    var b = new Uint8Array(16);
    if (c && c.getRandomValues) c.getRandomValues(b); else for (var i = 0; i < 16; i++) b[i] = Math.random() * 256;
    b[6] = b[6] & 15 | 64; b[8] = b[8] & 63 | 128;
    var h = Array.prototype.map.call(b, function (x) { return (x + 256).toString(16).slice(1); }).join('');
    return h.slice(0, 8) + '-' + h.slice(8, 12) + '-' + h.slice(12, 16) + '-' + h.slice(16, 20) + '-' + h.slice(20);
  }

  // tokenExpiry reads the exp claim of a JWT session token (seconds), only to schedule its renewal:
  // the widget never trusts what it reads there.
  function tokenExpiry(t) {
    try {
      var p = t.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
      return JSON.parse(atob(p + '==='.slice((p.length + 3) % 4))).exp || 0;
    } catch (e) { return 0; }
  }

  // retryAfter is the wait a 429/503 asks for, in ms (Retry-After in seconds or an HTTP date), 1-60 s.
  function retryAfter(res) {
    var h = res && res.headers.get('Retry-After'), s = Number(h);
    if (h && isNaN(s)) s = (Date.parse(h) - Date.now()) / 1000;
    if (!(s >= 1)) s = 1;
    return Math.min(s, 60) * 1000;
  }

  function resolve(c) {
    if (c && c.nodeType === 1) return c;
    if (typeof c !== 'string' || !c) return null;
    return document.getElementById(c.charAt(0) === '#' ? c.slice(1) : c) || document.querySelector(c);
  }

  function Widget(o) {
    var w = this;
    w.o = o;
    w.api = String(o.apiUrl || '').replace(/\/+$/, '');
    w.token = o.oauthToken || o.sessionToken || '';
    // The customer id is kept in this closure only: never written to the page, storage or the console.
    var customer = o.customerId == null ? '' : String(o.customerId);
    w.customer = function () { return customer; };
    w.root = el('section', { class: 'lw-root' + (o.theme === 'dark' ? ' lw-dark' : ''), 'aria-label': 'Loyalty rewards', 'data-theme': o.theme === 'dark' ? 'dark' : 'light' });
    w.bal = el('div', { class: 'lw-bal', 'data-lw': 'balance', text: '–' });
    w.tier = el('div', { class: 'lw-tier', 'data-lw': 'tier' });
    w.msg = el('p', { class: 'lw-msg', role: 'status', 'aria-live': 'polite', 'data-lw': 'message' });
    w.list = el('ul', { class: 'lw-list', 'aria-label': 'Rewards', 'data-lw': 'rewards' });
    w.root.append(el('div', { class: 'lw-head' }, el('div', null, el('div', { class: 'lw-lbl', text: 'Your points' }), w.bal), w.tier), w.msg, w.list);
    w.host = o.container;
    w.host.textContent = '';
    w.host.append(w.root);
    w.rewards = [];
    if (!w.token) return w.say('No session: this page must pass a portal session token to LoyaltyWidget.init (oauthToken).', true);
    if (!w.api) return w.say('No apiUrl: LoyaltyWidget.init needs the portal base URL, e.g. https://ledger.yourdomain.com/v1/portal.', true);
    w.say('Loading your rewards…');
    w.verified(customer).then(function (ok) { if (ok) w.refresh(); });
    var every = o.refreshInterval == null ? 30000 : Number(o.refreshInterval);
    if (every > 0) w.timer = setInterval(function () { if (!w.modal && !w.dead) w.refresh(); }, Math.max(every, 1000));
    w.scheduleRenewal();
  }

  // verified asks the server whether customerId is the session's customer (it hashes it; the page cannot),
  // and refuses for good when it is not: the widget never shows one customer's points under another's id.
  // Without a customerId, or when the server cannot answer, the catalog loads (a redeem is checked anyway).
  Widget.prototype.verified = function (customer) {
    var w = this;
    if (!customer) return Promise.resolve(true);
    return w.call('POST', '/session/verify', { customer_hash: customer }).then(function (r) {
      if (r.res.status !== 403) return !r.expired;
      w.dead = true;
      w.say('This session belongs to another customer: the rewards cannot be shown.', true);
      return false;
    }, function () { return true; });
  };

  Widget.prototype.say = function (text, bad, good) {
    this.msg.textContent = text || '';
    this.msg.className = 'lw-msg' + (bad ? ' lw-err' : good ? ' lw-ok' : '');
    this.msg.setAttribute('role', bad ? 'alert' : 'status');
  };

  // call sends one request to the portal API and returns {res, body}. A 401 asks the host page for a new
  // token once (onSessionExpired) and repeats the request with it; without one the widget says the
  // session has expired and stops. It rejects with {net: true} when the server cannot be reached.
  Widget.prototype.call = function (method, path, body, renewed) {
    var w = this;
    return fetch(w.api + path, {
      method: method,
      headers: body ? { Authorization: 'Bearer ' + w.token, 'Content-Type': 'application/json' } : { Authorization: 'Bearer ' + w.token },
      body: body ? JSON.stringify(body) : undefined,
      cache: 'no-store'
    }).then(function (res) {
      return res.text().then(function (t) {
        var b = null;
        try { b = t ? JSON.parse(t) : null; } catch (e) { /* not JSON: b stays null */ }
        if (res.status === 401 && !renewed) {
          return w.renew().then(function (ok) {
            return ok ? w.call(method, path, body, true) : { res: res, body: b, expired: true };
          });
        }
        if (res.status === 401) { w.expired(); return { res: res, body: b, expired: true }; }
        return { res: res, body: b };
      });
    }, function () { throw { net: true }; });
  };

  // renew gets a new token from the host page's onSessionExpired; one request at a time.
  Widget.prototype.renew = function () {
    var w = this, cb = w.o.onSessionExpired;
    if (w.dead) return Promise.resolve(false);
    if (typeof cb !== 'function') { w.expired(); return Promise.resolve(false); }
    if (!w.renewing) {
      w.renewing = Promise.resolve().then(cb).then(function (t) {
        if (typeof t === 'string' && t) { w.setToken(t); return true; }
        w.expired();
        return false;
      }, function () { w.expired(); return false; }).finally(function () { w.renewing = null; });
    }
    return w.renewing;
  };

  Widget.prototype.expired = function () {
    this.dead = true;
    this.closeModal();
    this.say('Your session has expired. Reopen the rewards from the chat to continue.', true);
    this.list.querySelectorAll('button').forEach(function (b) { b.disabled = true; });
  };

  Widget.prototype.setToken = function (t) {
    this.token = t;
    this.dead = false;
    if (typeof this.o.onTokenRefreshed === 'function') try { this.o.onTokenRefreshed(t); } catch (e) { /* the host's error */ }
    this.scheduleRenewal();
  };

  // scheduleRenewal renews the session with POST /session/refresh a minute (or a third of its
  // lifetime) before it expires, so that an open portal keeps working.
  Widget.prototype.scheduleRenewal = function () {
    var w = this, exp = tokenExpiry(w.token) * 1000, left = exp - Date.now();
    clearTimeout(w.renewTimer);
    if (!exp || left <= 0) return;
    w.renewTimer = setTimeout(function () {
      w.call('POST', '/session/refresh').then(function (r) {
        if (r.res.ok && r.body && r.body.session_token) w.setToken(r.body.session_token);
        else if (!r.expired) w.renewTimer = setTimeout(function () { w.scheduleRenewal(); }, 30000);
      }, function () { w.renewTimer = setTimeout(function () { w.scheduleRenewal(); }, 30000); });
    }, Math.min(Math.max(left - Math.min(60000, left / 3), 1000), 2147483647)); // setTimeout's largest delay
  };

  // refresh loads the catalog and renders it; 429/503 wait as long as Retry-After asks.
  Widget.prototype.refresh = function () {
    var w = this;
    if (w.dead) return Promise.resolve();
    clearTimeout(w.retryTimer);
    return w.call('GET', '/catalog').then(function (r) {
      if (r.expired) return;
      if (r.res.ok && r.body) {
        w.render(r.body);
        if (w.msg.dataset.sticky !== '1') w.say(r.body.stale ? 'Your balance may be a little out of date.' : '');
        w.msg.dataset.sticky = '';
        return;
      }
      if (r.res.status === 429 || r.res.status === 503) {
        var ms = retryAfter(r.res);
        w.say('The rewards service is busy. Trying again in ' + Math.ceil(ms / 1000) + ' s…', true);
        w.retryTimer = setTimeout(function () { w.refresh(); }, ms);
        return;
      }
      w.say(problemText(r.body, r.res.status), true);
    }, function () {
      w.say('The rewards service cannot be reached. Trying again shortly…', true);
      w.retryTimer = setTimeout(function () { w.refresh(); }, 10000);
    });
  };

  function problemText(b, status) {
    return (b && (b.detail || b.title)) || 'Something went wrong (HTTP ' + status + ').';
  }

  // state names how a reward shows: redeemable, or why not.
  function state(r) {
    if (!r.in_stock) return ['soldout', 'Out of stock'];
    if (!r.eligible) return ['ineligible', 'Needs ' + (r.min_tier || 'a higher') + ' tier'];
    if (!r.affordable) return ['unaffordable', 'Not enough points'];
    return ['ok', ''];
  }

  Widget.prototype.render = function (c) {
    var w = this;
    w.cat = c;
    w.bal.textContent = pts(c.balance);
    w.tier.textContent = (c.tier || '') + ' tier';
    var focused = document.activeElement && document.activeElement.getAttribute('data-reward');
    w.rewards = c.rewards || [];
    w.list.textContent = '';
    if (!w.rewards.length) w.list.append(el('li', { class: 'lw-item lw-desc', text: 'No rewards yet.' }));
    w.rewards.forEach(function (r) {
      var s = state(r);
      var btn = el('button', {
        type: 'button', class: 'lw-btn', 'data-reward': r.reward_id, disabled: s[0] !== 'ok' || w.dead,
        'aria-label': 'Redeem ' + r.name + ' for ' + pts(r.point_cost) + (s[1] ? ' (' + s[1].toLowerCase() + ')' : ''),
        onclick: function () { w.confirm(r, btn); }
      }, 'Redeem');
      // An image is shown when its URL is http(s) and loads (a host page's CSP may forbid it).
      var img = /^https?:\/\//i.test(r.image_url || '') ? el('img', { class: 'lw-img', src: r.image_url, alt: '', loading: 'lazy', onerror: function () { img.remove(); } }) : null;
      w.list.append(el('li', { class: 'lw-item', 'data-state': s[0], 'data-reward-id': r.reward_id }, img,
        el('div', null, el('div', { class: 'lw-name', text: r.name }),
          r.description ? el('div', { class: 'lw-desc', text: r.description }) : null,
          s[1] ? el('div', { class: 'lw-why', text: s[1] }) : null),
        el('div', { class: 'lw-cost', text: pts(r.point_cost) }), btn));
      if (focused === r.reward_id) btn.focus();
    });
  };

  // confirm opens the confirmation dialog for a reward. A fresh idempotency key is made per
  // confirmation; a retry of the same confirmation (429, 503, no answer) sends the same key again.
  Widget.prototype.confirm = function (r, opener) {
    var w = this, bal = w.cat ? w.cat.balance : 0;
    var title = el('h2', { id: 'lw-t-' + uuid(), text: 'Redeem ' + r.name + '?' });
    var desc = el('p', { id: 'lw-d-' + uuid(), text: pts(r.point_cost) + ' will be taken from your balance (' + pts(bal) + ' now, ' + pts(bal - r.point_cost) + ' after).' });
    var note = el('p', { class: 'lw-msg', role: 'status', 'aria-live': 'polite', 'data-lw': 'modal-message' });
    var cancel = el('button', { type: 'button', class: 'lw-btn lw-sec', 'data-lw': 'cancel', onclick: function () { w.closeModal(); } }, 'Cancel');
    var ok = el('button', { type: 'button', class: 'lw-btn', 'data-lw': 'confirm' }, 'Confirm');
    var box = el('div', { class: 'lw-modal', role: 'dialog', 'aria-modal': 'true', 'aria-labelledby': title.id, 'aria-describedby': desc.id, 'data-lw': 'dialog' },
      title, desc, note, el('div', { class: 'lw-acts' }, cancel, ok));
    w.openModal(box, opener && opener.getAttribute('data-reward'));
    var key = null;
    ok.addEventListener('click', function () {
      if (!key) key = uuid();
      ok.disabled = cancel.disabled = true;
      w.redeem(r, key, note, 0).then(function (done) {
        if (done) { key = null; return; }
        ok.disabled = cancel.disabled = false;
        ok.textContent = 'Try again';
      });
    });
    ok.focus();
  };

  // redeem posts the guide's redeem body. It resolves true when the dialog has moved on (receipt shown
  // or closed), false when the customer may try again with the same key.
  Widget.prototype.redeem = function (r, key, note, tries) {
    var w = this, cust = w.customer() || (w.cat && w.cat.customer_hash) || '';
    var say = function (t, bad) { note.textContent = t; note.className = 'lw-msg' + (bad ? ' lw-err' : ''); };
    say('Redeeming…');
    var again = function (ms, why) {
      if (tries >= 4) { say(why + ' Please try again in a moment.', true); return false; }
      say(why + ' Trying again in ' + Math.ceil(ms / 1000) + ' s…', true);
      return new Promise(function (ok) { setTimeout(ok, ms); }).then(function () { return w.redeem(r, key, note, tries + 1); });
    };
    return w.call('POST', '/redeem', {
      customer_hash: cust, reward_id: r.reward_id, point_cost: r.point_cost,
      fulfillment_method: r.fulfillment_method || 'email', idempotency_key: key
    }).then(function (x) {
      var st = x.res.status, b = x.body || {};
      if (x.expired) return true;
      if ((st === 200 || st === 201) && b.receipt_id) { w.receipt(r, b); return true; }
      if (st === 429 || st === 503) return again(retryAfter(x.res), 'The rewards service is busy.');
      var text = problemText(x.body, st), code = b.code;
      if (st === 409 && code === 'cost_changed') text = 'The cost of ' + r.name + ' has changed to ' + pts(b.point_cost != null ? b.point_cost : '?') + '. Nothing was taken: please check it and try again.';
      else if (st === 409 && code === 'out_of_stock') text = r.name + ' has just run out of stock. Nothing was taken.';
      else if (st === 409 && code === 'insufficient_points') text = 'You do not have enough points for ' + r.name + (b.balance != null ? ' (balance ' + pts(b.balance) + ')' : '') + '. Nothing was taken.';
      else if (st === 403 && code === 'tier_too_low') text = r.name + ' needs a higher tier.';
      else if (st === 403) text = 'This session belongs to another customer: the redemption was refused.';
      else if (st === 404) text = r.name + ' is no longer available.';
      w.closeModal();
      w.say(text, true);
      w.msg.dataset.sticky = '1';
      w.refresh();
      return true;
    }, function () { return again(5000, 'The rewards service cannot be reached.'); });
  };

  Widget.prototype.receipt = function (r, b) {
    var w = this, f = b.fulfillment || {};
    var title = el('h2', { id: 'lw-t-' + uuid(), text: 'Redeemed: ' + r.name });
    var dl = el('dl', { class: 'lw-rcpt', 'data-lw': 'receipt' },
      el('dt', { text: 'Receipt' }), el('dd', { 'data-lw': 'receipt-id', text: b.receipt_id }),
      el('dt', { text: 'Points used' }), el('dd', { text: pts(b.points_debited) }),
      el('dt', { text: 'New balance' }), el('dd', { 'data-lw': 'balance-after', text: pts(b.balance_after) }),
      el('dt', { text: 'Delivery' }), el('dd', { text: (f.method || '') + ' · ' + (f.status || '') }),
      f.coupon_code ? el('dt', { text: 'Your code' }) : null, f.coupon_code ? el('dd', { text: f.coupon_code }) : null);
    var done = el('button', { type: 'button', class: 'lw-btn', 'data-lw': 'done', onclick: function () { w.closeModal(); } }, 'Done');
    var box = el('div', { class: 'lw-modal', role: 'dialog', 'aria-modal': 'true', 'aria-labelledby': title.id, 'data-lw': 'dialog' },
      title, dl, el('div', { class: 'lw-acts' }, done));
    w.bal.textContent = pts(b.balance_after);
    w.say('Redeemed ' + r.name + '. Receipt ' + b.receipt_id + '.', false, true);
    w.msg.dataset.sticky = '1';
    w.openModal(box, w.returnTo);
    done.focus();
    w.refresh();
  };

  // openModal shows a dialog: Escape closes it, Tab stays inside it, and focus goes back to the reward's
  // button when it closes.
  Widget.prototype.openModal = function (box, returnTo) {
    var w = this;
    if (w.modal) w.modal.remove();
    w.returnTo = returnTo;
    var back = el('div', { class: 'lw-back' }, box);
    back.addEventListener('keydown', function (e) {
      if (e.key === 'Escape') { e.preventDefault(); if (!box.querySelector('button[disabled]')) w.closeModal(); return; }
      if (e.key !== 'Tab') return;
      var f = Array.prototype.filter.call(box.querySelectorAll('button,[href],input,[tabindex]'), function (n) { return !n.disabled; });
      if (!f.length) { e.preventDefault(); return; }
      var first = f[0], last = f[f.length - 1];
      if (e.shiftKey && document.activeElement === first) { e.preventDefault(); last.focus(); }
      else if (!e.shiftKey && document.activeElement === last) { e.preventDefault(); first.focus(); }
      else if (!box.contains(document.activeElement)) { e.preventDefault(); first.focus(); }
    });
    back.addEventListener('mousedown', function (e) { if (e.target === back) e.preventDefault(); });
    w.root.append(back);
    w.modal = back;
  };

  Widget.prototype.closeModal = function () {
    var w = this;
    if (!w.modal) return;
    w.modal.remove();
    w.modal = null;
    var b = w.returnTo && w.list.querySelector('button[data-reward="' + (global.CSS && global.CSS.escape ? global.CSS.escape(w.returnTo) : w.returnTo) + '"]');
    (b && !b.disabled ? b : w.root).focus();
  };

  Widget.prototype.destroy = function () {
    clearInterval(this.timer); clearTimeout(this.retryTimer); clearTimeout(this.renewTimer);
    this.dead = true;
    this.root.remove();
  };

  var mounted = new WeakMap(); // container -> widget: a second init on one container replaces the first

  function init(o) {
    o = o || {};
    var c = resolve(o.container);
    if (!c) throw new Error('LoyaltyWidget: no element for container ' + JSON.stringify(String(o.container)));
    if (!document.getElementById('lw-style')) document.head.append(el('style', { id: 'lw-style', text: STYLE }));
    var copy = {};
    for (var k in o) copy[k] = o[k];
    copy.container = c;
    if (mounted.has(c)) mounted.get(c).destroy();
    var w = new Widget(copy);
    mounted.set(c, w);
    w.root.tabIndex = -1;
    return {
      refresh: function () { w.dead = false; return w.refresh(); },
      setToken: function (t) { w.setToken(t); return w.refresh(); },
      destroy: function () { w.destroy(); }
    };
  }

  global.LoyaltyWidget = { version: VERSION, init: init };
})(window);
