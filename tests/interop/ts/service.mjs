// A service written with the official Restate TypeScript SDK, for tests/interop: the same
// code registers on perdure and on the real Restate server. Prints "LISTENING <port>".
import * as http2 from "node:http2";

// The SDK expects Node 22's Promise.withResolvers; Debian's Node is 20.
if (!Promise.withResolvers) {
  Promise.withResolvers = function () {
    let resolve, reject;
    const promise = new Promise((a, b) => { resolve = a; reject = b; });
    return { promise, resolve, reject };
  };
}

const restate = await import("@restatedev/restate-sdk");

const greeter = restate.service({
  name: "TsGreeter",
  handlers: {
    greet: async (ctx, name) => {
      const upper = await ctx.run("upper", () => String(name).toUpperCase());
      await ctx.sleep(20);
      return `Hello, ${upper}!`;
    },
  },
});

const counter = restate.object({
  name: "TsCounter",
  handlers: {
    add: async (ctx, delta) => {
      const value = ((await ctx.get("count")) ?? 0) + delta;
      ctx.set("count", value);
      return value;
    },
    greetAndWait: async (ctx, name) => {
      const greeting = ctx.serviceClient(greeter).greet(name);
      const { id, promise } = ctx.awakeable();
      ctx.objectSendClient(counter, "resolver").resolve({ id }, restate.rpc.sendOpts({ delay: 10 }));
      const other = await promise;
      return `${await greeting} / ${other}`;
    },
    resolve: async (ctx, req) => {
      ctx.resolveAwakeable(req.id, "awoken");
    },
  },
});

const server = http2.createServer(restate.endpoint().bind(greeter).bind(counter).http2Handler());
server.listen(0, "127.0.0.1", () => console.log(`LISTENING ${server.address().port}`));
