// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {IConsentRegistry} from "./IConsentRegistry.sol";
import {IStudyRegistry} from "./IStudyRegistry.sol";

/// @title IAccessLog
/// @notice The audit trail of every release and every refusal of imaging studies, written by the
/// gateways of the sites that hold them. Patients find their records by their indexed address.
/// @dev Gateways hold `GATEWAY_ROLE`; emergency clinicians hold `EMERGENCY_ROLE`. Both are granted
/// by the admin (`DEFAULT_ADMIN_ROLE`). The log is events only: it keeps no per-record storage.
///
/// Two modes:
/// - One record per transaction: `recordAccess` asks ConsentRegistry on chain and emits
///   `AccessGranted` or `AccessDenied`; `recordBreakGlass` emits `BreakGlassAccess`.
/// - Batched: the gateway keeps records in its outbox and anchors the Merkle root of many of them
///   with `anchorBatch`. Each record stays provable against the anchored root:
///
///   leaf = keccak256(bytes.concat(keccak256(abi.encode(
///            studyKey, patient, accessor, purpose, permitted, breakGlass, requestId, gateway, timestamp))))
///   with types (bytes32, address, address, uint8, bool, bool, bytes32, address, uint48), i.e.
///   `abi.encode(AccessRecord)`, nine 32-byte words; then the same sorted-pair StandardMerkleTree
///   as content roots (`node = keccak256(min(a, b) ‖ max(a, b))`, a one-record batch's root is its
///   leaf). `imaging_consent.merkle.MerkleTree` builds it. `timestamp` is the gateway's decision
///   time (unix seconds); a break-glass record has `purpose = ETREAT (1)`, `permitted = true`,
///   `breakGlass = true`. `recordLeaf` computes a leaf and `verifyRecord` checks a proof.
///
/// Batch ids are not stored: a mapping would cost a new slot (22,100 gas) on every anchor. A reused
/// `batchId`, or a root anchored twice, is visible in the `BatchAnchored` events and is flagged by
/// the off-chain indexer. A root counts as anchored by `gateway` once its `BatchAnchored` event is
/// in the chain; `verifyRecord` checks only the proof, not the anchoring.
interface IAccessLog {
    /// @notice One access record, as hashed into a batch leaf (see the contract notes).
    /// @param studyKey Opaque key of the study.
    /// @param patient The study's patient.
    /// @param accessor The account that asked for the study.
    /// @param purpose PurposeOfUse bit index (as in ConsentRegistry).
    /// @param permitted True if the study was released, false if refused.
    /// @param breakGlass True for an emergency access without consent.
    /// @param requestId The gateway's unique id for the request.
    /// @param gateway The gateway that decided, and that anchors the batch.
    /// @param timestamp Unix time of the decision.
    struct AccessRecord {
        bytes32 studyKey;
        address patient;
        address accessor;
        uint8 purpose;
        bool permitted;
        bool breakGlass;
        bytes32 requestId;
        address gateway;
        uint48 timestamp;
    }

    /// @notice Emitted when a gateway records an access that consent permits.
    /// @dev Whether the grant allowed identified data is not repeated here: it follows from the
    /// ConsentRegistry events up to this block, and leaving it out saves 312 gas per record.
    /// @param studyKey Opaque key of the study.
    /// @param patient The study's patient.
    /// @param accessor The account that asked for the study.
    /// @param purpose PurposeOfUse bit index asked for.
    /// @param requestId The gateway's unique id for the request.
    /// @param gateway The gateway that recorded the access.
    event AccessGranted(
        bytes32 indexed studyKey,
        address indexed patient,
        address indexed accessor,
        uint8 purpose,
        bytes32 requestId,
        address gateway
    );

    /// @notice Emitted when a gateway records a refused access (no consent for that purpose now).
    /// @param studyKey Opaque key of the study.
    /// @param patient The study's patient.
    /// @param accessor The account that asked for the study.
    /// @param purpose PurposeOfUse bit index asked for.
    /// @param requestId The gateway's unique id for the request.
    /// @param gateway The gateway that recorded the refusal.
    event AccessDenied(
        bytes32 indexed studyKey,
        address indexed patient,
        address indexed accessor,
        uint8 purpose,
        bytes32 requestId,
        address gateway
    );

    /// @notice Emitted when an emergency clinician accesses a study without consent (break-glass).
    /// Always visible to the patient, who is indexed.
    /// @param studyKey Opaque key of the study.
    /// @param patient The study's patient.
    /// @param accessor The emergency clinician (holds `EMERGENCY_ROLE`).
    /// @param requestId The gateway's unique id for the request.
    /// @param reasonHash Hash of the documented reason, kept off chain (never free text on chain).
    /// @param gateway The gateway that recorded the access.
    event BreakGlassAccess(
        bytes32 indexed studyKey,
        address indexed patient,
        address indexed accessor,
        bytes32 requestId,
        bytes32 reasonHash,
        address gateway
    );

    /// @notice Emitted when a gateway anchors the Merkle root of a batch of access records.
    /// @param root Merkle root over the batch's record leaves.
    /// @param count Number of records under the root.
    /// @param batchId The gateway's id for the batch (not checked for reuse).
    /// @param gateway The gateway that anchored the batch.
    event BatchAnchored(bytes32 indexed root, uint32 count, bytes32 indexed batchId, address indexed gateway);

    /// @notice Thrown when a break-glass accessor does not hold `EMERGENCY_ROLE`.
    /// @param accessor The account that does not hold the role.
    error AccessLogNotEmergency(address accessor);

    /// @notice Thrown when an access names the zero address as accessor.
    error AccessLogZeroAccessor();

    /// @notice Thrown when a break-glass access comes without a reason hash.
    /// @param requestId The gateway's id for the rejected request.
    error AccessLogZeroReason(bytes32 requestId);

    /// @notice Thrown when a batch is anchored with a zero root.
    /// @param batchId The gateway's id for the rejected batch.
    error AccessLogZeroRoot(bytes32 batchId);

    /// @notice Thrown when a batch is anchored with no records.
    /// @param batchId The gateway's id for the rejected batch.
    error AccessLogEmptyBatch(bytes32 batchId);

    /// @notice Thrown when a constructor argument is the zero address.
    error AccessLogZeroAddress();

    /// @notice Records one access to a study, permitted or refused, as consent says at this block.
    /// @dev Caller must hold `GATEWAY_ROLE`. Looks the patient up in StudyRegistry and asks
    /// `ConsentRegistry.isPermitted`. Never reverts on a refusal, which is recorded too. Reverts
    /// with StudyRegistry's `StudyRegistryUnknownStudy(studyKey)` for an unknown key.
    /// @param studyKey Opaque key of a registered study.
    /// @param accessor The account asking for the study.
    /// @param purpose PurposeOfUse bit index.
    /// @param requestId The gateway's unique id for the request.
    /// @return permitted Whether consent permits the access now.
    function recordAccess(bytes32 studyKey, address accessor, uint8 purpose, bytes32 requestId)
        external
        returns (bool permitted);

    /// @notice Records an emergency access to a study without consent.
    /// @dev Caller must hold `GATEWAY_ROLE`, and `accessor` must hold `EMERGENCY_ROLE`. Reverts
    /// with StudyRegistry's `StudyRegistryUnknownStudy(studyKey)` for an unknown key.
    /// @param studyKey Opaque key of a registered study.
    /// @param accessor The emergency clinician.
    /// @param requestId The gateway's unique id for the request.
    /// @param reasonHash Hash of the documented reason (kept off chain); must not be zero.
    function recordBreakGlass(bytes32 studyKey, address accessor, bytes32 requestId, bytes32 reasonHash) external;

    /// @notice Anchors the Merkle root of `count` access records, identified by `batchId`.
    /// @dev Caller must hold `GATEWAY_ROLE`. Nothing is stored; see the contract notes on batch ids.
    /// @param root Merkle root over the batch's record leaves; must not be zero.
    /// @param count Number of records under the root; at least 1.
    /// @param batchId The gateway's id for the batch.
    function anchorBatch(bytes32 root, uint32 count, bytes32 batchId) external;

    /// @notice What `recordAccess` would decide now, plus what a gateway needs to release: one call.
    /// @dev A view for gateways: the study's patient and current content root, and
    /// `ConsentRegistry.isPermitted`. Reverts with `StudyRegistryUnknownStudy` for an unknown key.
    /// @param studyKey Opaque key of a registered study.
    /// @param accessor The account asking for the study.
    /// @param purpose PurposeOfUse bit index.
    /// @return patient The study's patient.
    /// @return contentRoot The study's current content root.
    /// @return permitted Whether consent permits the access now.
    /// @return identified Whether a permitting grant allows identified data.
    function checkAccess(bytes32 studyKey, address accessor, uint8 purpose)
        external
        view
        returns (address patient, bytes32 contentRoot, bool permitted, bool identified);

    /// @notice The ConsentRegistry asked on every `recordAccess`.
    /// @return The ConsentRegistry, fixed at deployment.
    function consentRegistry() external view returns (IConsentRegistry);

    /// @notice The StudyRegistry that maps study keys to patients.
    /// @return The StudyRegistry, fixed at deployment.
    function studyRegistry() external view returns (IStudyRegistry);

    /// @notice The batch leaf of `record` (the encoding in the contract notes).
    /// @param record The access record.
    /// @return The double-hashed leaf of `abi.encode(record)`.
    function recordLeaf(AccessRecord calldata record) external pure returns (bytes32);

    /// @notice Whether `proof` proves `leaf` against `root` (OpenZeppelin `MerkleProof.verify`).
    /// @dev Checks the proof only. That `root` was anchored is shown by its `BatchAnchored` event.
    /// @param root A batch's Merkle root.
    /// @param leaf A record leaf, as `recordLeaf` computes it.
    /// @param proof Sibling hashes from the leaf up to the root.
    /// @return True if the proof leads from `leaf` to `root`.
    function verifyRecord(bytes32 root, bytes32 leaf, bytes32[] calldata proof) external pure returns (bool);
}
