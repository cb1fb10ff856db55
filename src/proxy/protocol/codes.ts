/**
 * The wire protocol's vocabulary (protocol v3.0): every message type byte the
 * proxy reads or writes, and the request codes of the untyped startup
 * packets. Frontend and backend codes share letters (C is Close from a client
 * and CommandComplete from a server), so each has its own name.
 */
export const enum MessageCode {
  // frontend (client → server)
  Bind = 0x42, // B
  Close = 0x43, // C
  CopyData = 0x64, // d (both directions)
  CopyDone = 0x63, // c (both directions)
  CopyFail = 0x66, // f
  Describe = 0x44, // D
  Execute = 0x45, // E
  Flush = 0x48, // H
  FunctionCall = 0x46, // F
  Parse = 0x50, // P
  /** PasswordMessage, SASLInitialResponse and SASLResponse */
  Password = 0x70, // p
  Query = 0x51, // Q
  Sync = 0x53, // S
  Terminate = 0x58, // X

  // backend (server → client)
  Authentication = 0x52, // R
  BackendKeyData = 0x4b, // K
  BindComplete = 0x32, // 2
  CloseComplete = 0x33, // 3
  CommandComplete = 0x43, // C
  CopyInResponse = 0x47, // G
  CopyOutResponse = 0x48, // H
  CopyBothResponse = 0x57, // W
  DataRow = 0x44, // D
  EmptyQueryResponse = 0x49, // I
  ErrorResponse = 0x45, // E
  NegotiateProtocolVersion = 0x76, // v
  NoData = 0x6e, // n
  NoticeResponse = 0x4e, // N
  NotificationResponse = 0x41, // A
  ParameterDescription = 0x74, // t
  ParameterStatus = 0x53, // S
  ParseComplete = 0x31, // 1
  PortalSuspended = 0x73, // s
  ReadyForQuery = 0x5a, // Z
  RowDescription = 0x54, // T
}

/** Transaction status byte of ReadyForQuery. */
export const enum TxStatusByte {
  Idle = 0x49, // I
  InTransaction = 0x54, // T
  Failed = 0x45, // E
}

/** What a Close or Describe names. */
export const enum TargetKind {
  Statement = 0x53, // S
  Portal = 0x50, // P
}

/** Field codes of ErrorResponse / NoticeResponse used by the proxy. */
export const enum ErrorField {
  Severity = 0x53, // S
  Code = 0x43, // C
}

/** Codes in the version field of the untyped startup packets. */
export const PROTOCOL_3_0 = 196608; // 3 << 16
export const SSL_REQUEST_CODE = 80877103;
export const GSSENC_REQUEST_CODE = 80877104;
export const CANCEL_REQUEST_CODE = 80877102;
/** PostgreSQL's own limit for a startup packet (MAX_STARTUP_PACKET_LENGTH). */
export const MAX_STARTUP_PACKET = 10000;
/** A server's answer to SSLRequest that accepts TLS. */
export const SSL_ACCEPTED = 0x53; // S
