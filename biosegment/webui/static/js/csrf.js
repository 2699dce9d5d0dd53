// With accounts, every state-changing request the UI makes must carry the session's CSRF token.
// This classic script runs before the page's modules and adds the token (from the page's
// <meta name="csrf-token">) to every same-origin fetch that is not a GET or HEAD.
(() => {
  const meta = document.querySelector('meta[name="csrf-token"]');
  const token = meta ? meta.content : "";
  if (!token) return;
  const original = window.fetch.bind(window);
  window.fetch = (input, init = {}) => {
    const request = input instanceof Request ? input : null;
    const method = (init.method || (request && request.method) || "GET").toUpperCase();
    const url = new URL(request ? request.url : String(input), window.location.href);
    if (method === "GET" || method === "HEAD" || url.origin !== window.location.origin) {
      return original(input, init);
    }
    const headers = new Headers(init.headers || (request ? request.headers : undefined));
    headers.set("X-CSRF-Token", token);
    return original(input, { ...init, headers });
  };
})();
