// Tollway's Swagger UI initializer (console/reference.py). The bearer scheme in /openapi.json gives the
// Authorize button; the key stays in this tab's memory only (persistAuthorization off).
window.ui = SwaggerUIBundle({
  url: "/openapi.json",
  dom_id: "#swagger-ui",
  deepLinking: true,
  persistAuthorization: false,
});
