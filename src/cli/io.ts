// What every command writes to and listens on: injectable, so tests run commands in-process.

export interface Io {
  stdout: (text: string) => void;
  stderr: (text: string) => void;
  /** Process signals (the long-running commands: run, approve). */
  onSignal?: (name: NodeJS.Signals, handler: () => void) => void;
}

export const processIo: Io = {
  stdout: (t) => process.stdout.write(t),
  stderr: (t) => process.stderr.write(t),
  onSignal: (name, handler) => process.on(name, handler),
};
