/**
 * The participant's connection to the broker: STOMP over WebSocket (RabbitMQ's Web-STOMP
 * plugin, behind nginx on the page's own origin at /ws), as her own broker user. She may write
 * to the readings exchange and read her reply queue, nothing else:
 * - submissions: SEND to /exchange/<readings>/<routing key>, persistent, `user-id` = her user
 *   (the broker checks it), with a receipt, which the broker sends after its confirm;
 * - results: SUBSCRIBE to /amq/queue/<reply queue> (an existing queue, no declaration), client
 *   acks, each acked by the caller only after it is stored.
 */
import { Client, type IMessage } from "@stomp/stompjs";

/** Why signing in or sending failed, in words a participant understands. */
export class ConnectionError extends Error {
  constructor(
    /** "credentials", "unreachable", "refused" or "timeout". */
    readonly kind: "credentials" | "unreachable" | "refused" | "timeout",
    message: string,
  ) {
    super(message);
    this.name = "ConnectionError";
  }
}

/** Plain-language messages. */
export const MESSAGES = {
  credentials: "The participant id or password is not right. Check both (they are in your enrollment letter) and try again.",
  unreachable: "The study server cannot be reached right now. Check your internet connection, or try again in a few minutes.",
  timeout: "The study server did not answer in time. Please try again in a few minutes.",
} as const;

/** Where the broker's Web-STOMP endpoint is: /ws on the page's own origin. */
export function defaultBrokerUrl(): string {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${location.host}/ws`;
}

/** A received result: its body, and the ack to call once it is stored. */
export interface Delivery {
  body: string;
  correlationId: string | undefined;
  ack(): void;
}

/** How long a sign-in or a send may take before the participant is told. */
const CONNECT_TIMEOUT_MS = 10_000;
const RECEIPT_TIMEOUT_MS = 15_000;

/** An open session with the broker. */
export class BrokerSession {
  private receiptCounter = 0;

  private constructor(
    private readonly client: Client,
    readonly participant: string,
  ) {}

  /**
   * Signs in. Resolves once the broker accepted the credentials; rejects with a
   * ConnectionError saying whether they were wrong or the broker could not be reached.
   * After a successful sign-in a lost connection is re-established in the background.
   */
  static connect(participant: string, password: string, url = defaultBrokerUrl(), vhost = "/"): Promise<BrokerSession> {
    return new Promise((resolve, reject) => {
      let settled = false;
      const client = new Client({
        brokerURL: url,
        connectHeaders: { login: participant, passcode: password, host: vhost },
        // No retries while signing in: the participant gets an answer, not a spinner.
        reconnectDelay: 0,
        connectionTimeout: CONNECT_TIMEOUT_MS,
        heartbeatIncoming: 10_000,
        heartbeatOutgoing: 10_000,
      });
      const session = new BrokerSession(client, participant);
      const fail = (error: ConnectionError) => {
        if (settled) return;
        settled = true;
        void client.deactivate();
        reject(error);
      };
      const timer = setTimeout(() => fail(new ConnectionError("timeout", MESSAGES.timeout)), CONNECT_TIMEOUT_MS + 1000);
      client.onConnect = () => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        // From now on, come back after a broker restart or a network change.
        client.reconnectDelay = 2000;
        resolve(session);
      };
      client.onStompError = (frame) => {
        const text = `${frame.headers.message ?? ""} ${frame.body ?? ""}`;
        clearTimeout(timer);
        if (!settled) {
          // RabbitMQ answers wrong credentials with an ERROR frame ("Bad CONNECT",
          // "Access refused for user ...") and closes the socket.
          if (/access refused|login|bad connect|auth/i.test(text)) {
            fail(new ConnectionError("credentials", MESSAGES.credentials));
          } else {
            fail(new ConnectionError("refused", `The study server refused the connection (${frame.headers.message ?? "no reason given"}).`));
          }
        }
      };
      client.onWebSocketClose = () => {
        clearTimeout(timer);
        // Closed before CONNECTED without an ERROR frame: nothing answers at /ws (nginx says
        // 502, or the page's server is down).
        fail(new ConnectionError("unreachable", MESSAGES.unreachable));
      };
      client.activate();
    });
  }

  /** Whether the connection is up now. */
  get connected(): boolean {
    return this.client.connected;
  }

  /**
   * Reads the reply queue: every result is handed to `onResult`, which acks it once stored.
   * Re-subscribes after a reconnect; unacked results are redelivered by the broker.
   */
  subscribe(queue: string, onResult: (d: Delivery) => void): void {
    const start = () => {
      this.client.subscribe(
        `/amq/queue/${queue}`,
        (message: IMessage) => {
          onResult({
            body: message.body,
            correlationId: message.headers["correlation-id"],
            ack: () => message.ack(),
          });
        },
        { ack: "client-individual", "prefetch-count": "16" },
      );
    };
    start();
    this.client.onConnect = () => start();
  }

  /**
   * Publishes a submission and waits for the broker's receipt (sent after its confirm: the
   * submission is then safely queued).
   */
  publish(exchange: string, routingKey: string, replyTo: string, submissionId: string, body: string): Promise<void> {
    if (!this.client.connected) {
      return Promise.reject(new ConnectionError("unreachable", MESSAGES.unreachable));
    }
    const receipt = `r-${submissionId}-${++this.receiptCounter}`;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new ConnectionError("timeout", "The study server did not confirm your readings in time. They may not have arrived: please send them again.")),
        RECEIPT_TIMEOUT_MS,
      );
      this.client.watchForReceipt(receipt, () => {
        clearTimeout(timer);
        resolve();
      });
      this.client.publish({
        destination: `/exchange/${exchange}/${routingKey}`,
        headers: {
          "content-type": "application/json",
          persistent: "true",
          "user-id": this.participant,
          // STOMP reserves message-id for the broker; RabbitMQ maps amqp-message-id to the
          // AMQP message_id property.
          "amqp-message-id": submissionId,
          "correlation-id": submissionId,
          "reply-to": replyTo,
          type: "submission",
          "app-id": "web",
          receipt,
        },
        body,
      });
    });
  }

  /** Closes the connection. */
  async close(): Promise<void> {
    await this.client.deactivate();
  }
}
