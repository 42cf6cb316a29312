// The command side of a benchmark keeper process (fleet-keeper.mjs, burst-keeper.mjs), run with
// child_process.fork: `{ cmd }` messages run `control.handlers[cmd]` and are answered `{ cmd: '<cmd>:done', ... }`;
// `exit` (or the parent going away) runs `control.onExit` and exits. Uncaught errors are counted, not fatal,
// since "no unhandled error" is one of the figures.
export function keeperCommands(name) {
  const control = { handlers: {}, onExit: async () => {}, unhandled: 0 };
  process.on('unhandledRejection', (error) => {
    control.unhandled++;
    console.error(`${name}: unhandled rejection`, error);
  });
  process.on('uncaughtException', (error) => {
    control.unhandled++;
    console.error(`${name}: uncaught exception`, error);
  });
  process.on('message', (message) => {
    if (message.cmd === 'exit') {
      control
        .onExit()
        .catch(() => {})
        .finally(() => process.exit(0));
      return;
    }
    const handler = control.handlers[message.cmd];
    if (!handler) return;
    Promise.resolve()
      .then(() => handler(message))
      .then(
        (reply) => process.send({ ...reply, cmd: `${message.cmd}:done` }),
        (error) => process.send({ cmd: `${message.cmd}:done`, error: String(error) }),
      );
  });
  process.on('disconnect', () => void control.onExit().finally(() => process.exit(0)));
  return control;
}
