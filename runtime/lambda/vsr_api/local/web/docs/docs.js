// vsr's API reference: Swagger UI over this server's /openapi.json. Nothing is fetched from
// elsewhere: no online validator badge, and the API key the web page keeps in this tab (if any)
// is offered to "Try it out".
"use strict";

window.addEventListener("DOMContentLoaded", () => {
  const ui = SwaggerUIBundle({
    url: new URL("openapi.json", document.baseURI).href,
    dom_id: "#swagger-ui",
    validatorUrl: null, // never the online validator (its badge, in the standalone layout, loads an image from it)
    deepLinking: true,
    docExpansion: "list",
    defaultModelsExpandDepth: 0,
    onComplete: () => {
      const key = sessionStorage.getItem("vsr-api-key");
      if (key) ui.preauthorizeApiKey("apiKey", key);
      document.body.dataset.docs = "rendered";
    },
  });
});
