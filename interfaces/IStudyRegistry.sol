// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/// @title IStudyRegistry
/// @notice The imaging studies sites hold: who the patient is, and a Merkle root over their
/// content so any released instance can be checked against the chain.
/// @dev A study is keyed by the registering site and an opaque
/// `studyKey = keccak256(sitePepper ‖ utf8(StudyInstanceUID))`, computed off chain with the site's
/// secret pepper. No personal data is ever stored or emitted. `bytes32(0)` is never a study key:
/// ConsentRegistry uses it for "all my studies".
///
/// Trust model:
/// - Sites (`SITE_ROLE`) are trusted only for their own studies. Every study lives in its site's
///   namespace (storage key `keccak256(abi.encode(site, studyKey))`, site = the registering
///   `msg.sender`), and only that site can update it. Another site registering the same
///   `studyKey`, e.g. copied from a pending transaction, gets a separate entry of its own, which
///   no gateway of the first site ever reads.
/// - The admin (`DEFAULT_ADMIN_ROLE`, OpenZeppelin AccessControlDefaultAdminRules) grants and
///   revokes `SITE_ROLE` and may correct the patient of, or retire, a wrongly registered study.
///   Handing over or renouncing the admin role takes two steps separated by a delay, so it never
///   happens by one mistaken or stolen transaction.
///
/// Content root: `contentRoot` is the root of a Merkle tree over the study's per-instance leaves
/// (OpenZeppelin StandardMerkleTree shape: double-hashed leaves, sorted pairs,
/// `node = keccak256(min(a, b) ‖ max(a, b))`). A one-instance study's root is its leaf and its
/// proof empty. The contract checks proofs only; the leaf is computed off chain from the file
/// (docs/ARCHITECTURE.md, "Content protocol v2, exactly", with test vectors), with
/// `instanceKey = keccak256(sitePepper ‖ utf8(SOPInstanceUID))`:
/// - v2 (every registration since):
///   `leaf = keccak256(bytes.concat(keccak256(abi.encode(instanceKey, pixelHash, viewHash, fileHash))))`
///   where `pixelHash = sha256(top-level PixelData value as stored)` (the whole file if none),
///   `viewHash = sha256` of the canonical encoding of the attributes that change what a reader sees
///   or measures (Image Pixel, Image Plane, Modality and VOI LUT, laterality, frame timing,
///   functional groups, ...), and `fileHash = sha256(file bytes with the PixelData value replaced
///   by pixelHash)`: byte-exact for the whole file, each byte hashed once.
/// - v1 (studies registered before v2, verified as before until registered again):
///   `leaf = keccak256(bytes.concat(keccak256(abi.encode(instanceKey, pixelHash))))`.
/// A v2 leaf hashes 128 bytes and a v1 leaf 64, so no leaf of one protocol is a leaf of the other.
///
/// Versions: registration is version 1 and each `updateContent` adds one. Only the current root is
/// verified on chain by `verifyInstance`; every earlier root stays in the `StudyRegistered` and
/// `ContentUpdated` events.
interface IStudyRegistry {
    /// @notice Emitted when a site registers a study (version 1).
    /// @param site The registering site, whose namespace holds the study.
    /// @param studyKey Opaque key of the study.
    /// @param patient The study's patient.
    /// @param contentRoot Merkle root over the study's instance leaves.
    /// @param instanceCount Number of instances under the root.
    event StudyRegistered(
        address indexed site,
        bytes32 indexed studyKey,
        address indexed patient,
        bytes32 contentRoot,
        uint32 instanceCount
    );

    // Not indexed on purpose: these fields are read with the event, never searched by.
    /* solhint-disable gas-indexed-events */

    /// @notice Emitted when a site replaces the content root of one of its studies.
    /// @param site The site.
    /// @param studyKey Opaque key of the study.
    /// @param version The new version: 2 for the first update, then 3, ...
    /// @param contentRoot The new content root.
    /// @param instanceCount Number of instances under the new root.
    event ContentUpdated(
        address indexed site, bytes32 indexed studyKey, uint32 version, bytes32 contentRoot, uint32 instanceCount
    );

    /// @notice Emitted when the admin corrects the patient of a study.
    /// @param studyKey Opaque key of the study.
    /// @param oldPatient The patient it was registered for.
    /// @param newPatient The patient it belongs to.
    /// @param site The site whose namespace holds the study.
    event StudyCorrected(
        bytes32 indexed studyKey, address indexed oldPatient, address indexed newPatient, address site
    );

    /* solhint-enable gas-indexed-events */

    /// @notice Emitted when the admin retires (deletes) a study.
    /// @param studyKey Opaque key of the study.
    /// @param patient The patient it was registered for.
    /// @param site The site whose namespace held the study.
    event StudyRetired(bytes32 indexed studyKey, address indexed patient, address indexed site);

    /// @notice Thrown when deploying with the zero address as admin.
    error StudyRegistryZeroAdmin();

    /// @notice Thrown when registering the reserved key `bytes32(0)`.
    error StudyRegistryZeroStudyKey();

    /// @notice Thrown when registering a study for, or correcting it to, the zero address.
    error StudyRegistryZeroPatient();

    /// @notice Thrown when a content root is zero or the instance count is zero.
    /// @param contentRoot The rejected content root.
    /// @param instanceCount The rejected instance count.
    error StudyRegistryInvalidContent(bytes32 contentRoot, uint32 instanceCount);

    /// @notice Thrown when a site registers a key already registered in its own namespace.
    /// @param site The site.
    /// @param studyKey The key already registered.
    error StudyRegistryStudyExists(address site, bytes32 studyKey);

    /// @notice Thrown when a study key is not registered in the site's namespace.
    /// @param site The site.
    /// @param studyKey The unknown key.
    error StudyRegistryUnknownStudy(address site, bytes32 studyKey);

    /// @notice Registers a study in the caller's (a site's) namespace, at version 1.
    /// @dev Caller needs `SITE_ROLE`.
    /// @param studyKey Opaque key of the study; not `bytes32(0)`.
    /// @param patient The study's patient; not the zero address.
    /// @param contentRoot Merkle root over the study's instance leaves; not zero.
    /// @param instanceCount Number of instances under the root; not zero.
    function registerStudy(bytes32 studyKey, address patient, bytes32 contentRoot, uint32 instanceCount) external;

    /// @notice Replaces the content root of one of the caller's studies and adds one to its version.
    /// @dev Caller needs `SITE_ROLE`; the study must be in the caller's namespace.
    /// @param studyKey Opaque key of the study.
    /// @param contentRoot The new content root; not zero.
    /// @param instanceCount Number of instances under the new root; not zero.
    function updateContent(bytes32 studyKey, bytes32 contentRoot, uint32 instanceCount) external;

    /// @notice Corrects the patient of a wrongly registered study. Admin only.
    /// @param site The site whose namespace holds the study.
    /// @param studyKey Opaque key of the study.
    /// @param patient The patient the study belongs to; not the zero address.
    function correctPatient(address site, bytes32 studyKey, address patient) external;

    /// @notice Retires (deletes) a wrongly registered study. Admin only. The site may register
    /// the key again afterwards.
    /// @param site The site whose namespace holds the study.
    /// @param studyKey Opaque key of the study.
    function retireStudy(address site, bytes32 studyKey) external;

    /// @notice A registered study of `site`; reverts with `StudyRegistryUnknownStudy` if unknown.
    /// @param site The site.
    /// @param studyKey Opaque key of the study.
    /// @return patient The study's patient.
    /// @return contentRoot The current content root.
    /// @return instanceCount Number of instances under the current root.
    /// @return registeredAt Block time of the registration.
    function studyOf(address site, bytes32 studyKey)
        external
        view
        returns (address patient, bytes32 contentRoot, uint32 instanceCount, uint48 registeredAt);

    /// @notice The patient of a study of `site`, or the zero address if unknown.
    /// @param site The site.
    /// @param studyKey Opaque key of the study.
    /// @return The patient, or `address(0)`.
    function patientOf(address site, bytes32 studyKey) external view returns (address);

    /// @notice The current content version of a study of `site` (1 at registration).
    /// @dev Reverts with `StudyRegistryUnknownStudy` if unknown.
    /// @param site The site.
    /// @param studyKey Opaque key of the study.
    /// @return The version.
    function contentVersionOf(address site, bytes32 studyKey) external view returns (uint32);

    /// @notice Whether `leaf` is in the current content tree of a study of `site`.
    /// @dev Reverts with `StudyRegistryUnknownStudy` if unknown.
    /// @param site The site.
    /// @param studyKey Opaque key of the study.
    /// @param leaf The instance's (double-hashed) leaf.
    /// @param proof The sibling hashes from the leaf to the root.
    /// @return True if the proof leads from `leaf` to the current content root.
    function verifyInstance(address site, bytes32 studyKey, bytes32 leaf, bytes32[] calldata proof)
        external
        view
        returns (bool);
}
