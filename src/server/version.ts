/** The product's version, as `anytime --version` and `GET /v1/status` report it. */
export const ANYTIME_VERSION = "0.1.0";
