#!/usr/bin/env node
// `npx anytime ...` in a checkout: run the TypeScript CLI entry through tsx's loader.
import { register } from "tsx/esm/api";

register();
await import("../targets/node/cli.ts");
